"""What the credentials package and the tests import: nothing heavy at import time (--help stays fast), and no
test imports the crypt module that Python 3.13 no longer has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_import_is_lazy():
    """--help must stay fast: importing the module must not pull in passlib or cryptography."""
    code = (
        "import sys, provision.core.credentials.passwords, provision.core.credentials.sshkeys,"
        " provision.core.credentials.hostkeys, provision.core.credentials.netbird, provision.core.credentials.identity;"
        "print(sorted(m for m in ('passlib', 'cryptography') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    assert out.stdout.strip() == "[]"


def test_no_test_imports_the_crypt_module_gone_in_python_3_13():
    """Hashes are verified with libxcrypt through ctypes (tests/support/libxcrypt.py), which every Python has."""
    import re

    for path in sorted(Path(__file__).resolve().parents[2].rglob("*.py")):
        assert not re.search(r"^\s*(import crypt\b|from crypt import)", path.read_text(), re.MULTILINE), path.name
