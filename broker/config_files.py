"""The line-based files Mosquitto users bring along: password files, ACL files and
mosquitto.conf. Blank lines and lines starting with `#` carry nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


class ConfigFileError(ValueError):
    """A file that cannot be used as written, with the file and line at fault."""


def read_text(path: str | Path, error: type[ConfigFileError] = ConfigFileError) -> str:
    try:
        return Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{path}: {problem}") from None


def significant_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) for every line that is neither blank nor a comment."""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line
