"""A wrapper that keeps secrets out of reprs, tracebacks and logs."""

from __future__ import annotations


class Secret:
    """Holds a secret string. `str()` and `repr()` never show it; call `.reveal()` where it is really needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickle a secret by accident
        raise TypeError("a Secret cannot be pickled")
