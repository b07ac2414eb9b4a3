"""The `roost` console script: every subcommand is a manage.py command of the project."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "roost.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["roost", *sys.argv[1:]])


if __name__ == "__main__":
    main()
