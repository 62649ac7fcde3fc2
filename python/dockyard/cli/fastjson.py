"""JSON for the CLI's request path, on CPython's C codec (`_json`) directly.

`import json` compiles eight regular expressions for its pure-Python fallback
and pulls in `re` and `enum`: about 9 ms of a CLI start of ~12 ms on the
2-core machines this is measured on. The scanner and the encoder below are
the very C functions `json.loads`/`json.dumps` use; only the fallback and the
options the CLI never passes are left out."""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Context:
    """What the C scanner reads off `json.JSONDecoder`."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]


def _unsupported(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


# markers=None: no cycle check (the CLI serializes trees it built itself).
_encode = _json.make_encoder(None, _unsupported, _json.encode_basestring_ascii, None,
                             ": ", ", ", False, False, True)


def loads(s: str | bytes | bytearray) -> Any:
    """`json.loads` of one JSON document; ValueError when it isn't one."""
    if not isinstance(s, str):
        s = bytes(s).decode("utf-8-sig" if s[:3] == b"\xef\xbb\xbf" else "utf-8")
    start = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = _scan(s, start)
    except StopIteration as e:
        raise ValueError(f"Expecting value: char {e.value}") from None
    if s[end:].strip(_WS):
        raise ValueError(f"Extra data: char {end}")
    return obj


def dumps(obj: Any) -> str:
    """`json.dumps(obj)` with its default separators."""
    return "".join(_encode(obj, 0))
