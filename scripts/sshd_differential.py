#!/usr/bin/env python3
"""The long run of the model of access against a real sshd (tests/sshd/test_differential.py): many more
generated authorized_keys files than the suite's few, each key of each file logged in with for real.

    scripts/sshd_differential.py [EXAMPLES]     (default 300; as root, openssh-server installed)

Any disagreement stops the run and prints the file's lines for that key; sshd is right, the model is fixed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    examples = sys.argv[1] if len(sys.argv) > 1 else "300"
    if not examples.isdigit() or int(examples) < 1:
        print(f"usage: {sys.argv[0]} [EXAMPLES]  (a positive number of files, default 300)", file=sys.stderr)
        return 2
    python = REPO / ".venv" / "bin" / "python"
    env = {**os.environ, "ZVM_SSHD_EXAMPLES": examples}
    return subprocess.call([str(python if python.exists() else sys.executable), "-m", "pytest", "-x", "-q",
                            "-p", "no:cacheprovider", str(REPO / "tests" / "sshd"), "-k", "generated"],
                           cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())
