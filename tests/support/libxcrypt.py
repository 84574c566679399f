"""libxcrypt through ctypes: the independent verifier of the hashes the tool writes.

It is what PAM uses in the VM to check the password at login, and it is not passlib (which makes the
hashes), so a passlib bug cannot hide itself. Python's `crypt` module was the same library, but it is gone
in Python 3.13.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data) in libxcrypt's <crypt.h>


@functools.cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypt")
    if name is None:
        raise OSError("libcrypt (libxcrypt) not found; apt-get install libcrypt1")
    lib = ctypes.CDLL(name)
    if not hasattr(lib, "crypt_gensalt"):
        raise OSError(f"{name} is not libxcrypt (no crypt_gensalt)")
    lib.crypt_r.restype = ctypes.c_char_p
    lib.crypt_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    return lib


def crypt(phrase: str, setting: str) -> str:
    """crypt_r(3): the hash of `phrase` with the method, rounds and salt of `setting` (a full hash works as a
    setting). A refused setting gives libxcrypt's failure token, "*0" or "*1", as Python's crypt did."""
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)  # zeroed: "initialized" is 0
    result = _lib().crypt_r(phrase.encode(), setting.encode(), data)
    if result is None:  # only when built without failure tokens
        return "*0"
    return result.decode()


def gensalt(prefix: str, count: int = 0) -> str:
    """crypt_gensalt(3) with random bytes from the OS: "$6$" (count = rounds, 0 for the default) or "$y$"
    (count = cost)."""
    result = _lib().crypt_gensalt(prefix.encode(), count, None, 0)
    if result is None:
        raise ValueError(f"libxcrypt refused the setting {prefix!r} with count {count}")
    return result.decode()
