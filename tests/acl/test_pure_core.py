"""The broker imports the decision core without Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = ["acl.topics", "acl.rules", "acl.substitution", "acl.decisions", "acl.compiler", "acl.explain", "acl.impact"]


def test_the_core_modules_import_without_django() -> None:
    code = (
        "import sys\n"
        f"for name in {PURE!r}: __import__(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, check=True)
    assert result.stdout.strip() == ""
