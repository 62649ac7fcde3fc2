"""256-bit identifiers: generation, truncation, prefix lookup, image and chain IDs.

Mirrors docker's ``pkg/stringid`` (random IDs, 12-character short IDs), the
prefix lookup of containers and images (``pkg/truncindex`` / the memdb prefix
index: a unique prefix resolves, several matches are an error), the image ID
(sha256 of the exact config JSON bytes) and layer chain IDs (OCI image spec:
``ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))``).

IDs may be given bare (``4f1c...``) or with their algorithm (``sha256:4f1c...``);
prefix lookups compare the hex part, so ``sha256:4f1c`` and ``4f1c`` are the same
prefix, and return the ID in the form it was stored.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator

from .errors import AmbiguousPrefix, IDNotFound, InvalidParameter, NotFound
from .reference import is_digest

__all__ = [
    "SHORT_LEN",
    "FULL_LEN",
    "generate_id",
    "truncate_id",
    "strip_algorithm",
    "is_full_id",
    "validate_id",
    "image_id",
    "chain_ids",
    "chain_id",
    "resolve_prefix",
    "PrefixIndex",
    "NotFoundFactory",
]

SHORT_LEN = 12
FULL_LEN = 64
_SHA256_PREFIX = "sha256:"
_FULL_ID_RE = re.compile(r"[a-f0-9]{64}")

#: Builds the error for a prefix that matches nothing, e.g.
#: ``lambda p: ImageNotFound(f"No such image: {p}")``.
NotFoundFactory = Callable[[str], NotFound]


def _default_not_found(prefix: str) -> NotFound:
    return IDNotFound(f"no such id: {prefix}")


def generate_id(randbytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A random 64-hex ID whose 12-character short form is not all digits.

    Like docker's ``stringid.GenerateRandomID``: an all-numeric short ID would
    be a bad default hostname, so such draws are retried.
    """
    while True:
        raw = randbytes(32)
        if len(raw) != 32:
            raise ValueError("randbytes must return 32 bytes")
        candidate = raw.hex()
        if not _all_digits(candidate[:SHORT_LEN]):
            return candidate


def _all_digits(s: str) -> bool:
    return all("0" <= c <= "9" for c in s)


def strip_algorithm(id_: str) -> str:
    """``sha256:abc`` -> ``abc``; anything up to the first ``:`` is dropped."""
    _, sep, rest = id_.partition(":")
    return rest if sep else id_


def truncate_id(id_: str) -> str:
    """The short form docker shows: algorithm dropped, first 12 characters."""
    return strip_algorithm(id_)[:SHORT_LEN]


def is_full_id(s: str) -> bool:
    """64 lowercase hex characters, optionally prefixed with ``sha256:``."""
    if s.startswith(_SHA256_PREFIX):
        s = s[len(_SHA256_PREFIX):]
    return _FULL_ID_RE.fullmatch(s) is not None


def validate_id(s: str) -> str:
    """Return the bare 64-hex ID of `s` (``sha256:`` allowed), else raise
    :class:`InvalidParameter`."""
    if not is_full_id(s):
        raise InvalidParameter(f"invalid ID {s!r}: must be 64 lowercase hexadecimal characters")
    return strip_algorithm(s)


def image_id(config_bytes: bytes) -> str:
    """Docker's image ID: ``sha256:`` + sha256 of the exact config JSON bytes."""
    return _SHA256_PREFIX + hashlib.sha256(config_bytes).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of every prefix of the layer stack `diff_ids` (bottom first).

    ``ChainID(0) = DiffID(0)``;
    ``ChainID(n) = "sha256:" + sha256(ChainID(n-1) + " " + DiffID(n))``.
    """
    out: list[str] = []
    for diff_id in diff_ids:
        if not is_digest(diff_id):
            raise InvalidParameter(f"invalid diff ID: {diff_id!r}")
        if not out:
            out.append(diff_id)
        else:
            out.append(image_id(f"{out[-1]} {diff_id}".encode()))
    return out


def chain_id(diff_ids: list[str]) -> str:
    """The chain ID of the whole stack (the top layer's); the stack must not be empty."""
    if not diff_ids:
        raise InvalidParameter("chain ID of an empty layer stack")
    return chain_ids(diff_ids)[-1]


def _normalize_prefix(prefix: str) -> str:
    key = prefix[len(_SHA256_PREFIX):] if prefix.startswith(_SHA256_PREFIX) else prefix
    if key == "":
        raise InvalidParameter("prefix can't be empty")
    return key


def _key(id_: str) -> str:
    return id_[len(_SHA256_PREFIX):] if id_.startswith(_SHA256_PREFIX) else id_


def resolve_prefix(
    prefix: str,
    candidates: Iterable[str],
    *,
    not_found: NotFoundFactory | None = None,
) -> str:
    """The one candidate ID that starts with `prefix`.

    For stores that pre-filter in SQL (``WHERE id LIKE ? || '%'``) and need
    docker's outcome: the candidate (as given) when exactly one distinct ID
    matches; :class:`AmbiguousPrefix` ("multiple IDs found with provided
    prefix: <prefix>") when several do; `not_found(prefix)` (default
    :class:`IDNotFound`) when none does; :class:`InvalidParameter` for an empty
    prefix.  ``sha256:`` on the prefix or the candidates is ignored; candidates
    that do not start with the prefix are ignored too.
    """
    key = _normalize_prefix(prefix)
    found: str | None = None
    found_key: str | None = None
    for cand in candidates:
        ck = _key(cand)
        if not ck.startswith(key):
            continue
        if found_key is None:
            found, found_key = cand, ck
        elif ck != found_key:
            raise AmbiguousPrefix(f"multiple IDs found with provided prefix: {prefix}")
    if found is None:
        raise (not_found or _default_not_found)(prefix)
    return found


class PrefixIndex:
    """An in-memory set of IDs retrievable by any unique prefix (docker's truncindex).

    Thread-safe.  IDs are kept in the form they were added (``sha256:`` or
    bare); lookups ignore ``sha256:``.  Adding an ID already present replaces
    its stored form.
    """

    def __init__(
        self, ids: Iterable[str] = (), *, not_found: NotFoundFactory | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._keys: list[str] = []  # sorted hex keys
        self._ids: dict[str, str] = {}  # key -> ID as added
        self._not_found = not_found or _default_not_found
        for id_ in ids:
            self.add(id_)

    def add(self, id_: str) -> None:
        key = _key(id_)
        if key == "" or any(c.isspace() for c in key):
            raise InvalidParameter(f"invalid ID: {id_!r}")
        with self._lock:
            if key not in self._ids:
                bisect.insort(self._keys, key)
            self._ids[key] = id_

    def delete(self, id_: str) -> None:
        """Remove the full ID `id_`; raise `not_found` if it is not present."""
        key = _key(id_)
        with self._lock:
            if key not in self._ids:
                raise self._not_found(id_)
            del self._ids[key]
            i = bisect.bisect_left(self._keys, key)
            del self._keys[i]

    def discard(self, id_: str) -> None:
        """Remove the full ID `id_` if present."""
        try:
            self.delete(id_)
        except NotFound:
            pass

    def get(self, prefix: str, *, not_found: NotFoundFactory | None = None) -> str:
        """The ID starting with `prefix`; errors as in :func:`resolve_prefix`."""
        key = _normalize_prefix(prefix)
        with self._lock:
            i = bisect.bisect_left(self._keys, key)
            matches = []
            for k in self._keys[i:i + 2]:
                if k.startswith(key):
                    matches.append(k)
            if len(matches) > 1:
                raise AmbiguousPrefix(f"multiple IDs found with provided prefix: {prefix}")
            if not matches:
                raise (not_found or self._not_found)(prefix)
            return self._ids[matches[0]]

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, str) and _key(id_) in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter([self._ids[k] for k in self._keys])
