"""Sentinels the evaluator passes around instead of Python values: `MISSING`
(Go's invalid reflect.Value) and `NOFINAL` (no value piped into a command)."""

from __future__ import annotations


class _Missing:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class _NoFinal:
    __slots__ = ()


NOFINAL = _NoFinal()  # "no piped value" marker (Go's missingVal)
