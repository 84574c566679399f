"""The libguestfs Python binding is Debian's, built for Debian's python3 only: tests that create a guestfs
handle (without launching it) skip where the binding is absent, e.g. the Python 3.13 pass of scripts/test.sh."""

from __future__ import annotations

import importlib.util

import pytest

needs_guestfs = pytest.mark.skipif(
    importlib.util.find_spec("guestfs") is None, reason="no libguestfs binding for this Python (python3-guestfs)"
)
