"""IDs, prefix lookup, image and chain IDs (dockyard.ids)."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dockyard.errors import (
    AmbiguousPrefix,
    IDNotFound,
    ImageNotFound,
    InvalidParameter,
    NotFound,
)
from dockyard.ids import (
    FULL_LEN,
    SHORT_LEN,
    PrefixIndex,
    chain_id,
    chain_ids,
    generate_id,
    image_id,
    is_full_id,
    resolve_prefix,
    strip_algorithm,
    truncate_id,
    validate_id,
)

FAST = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

HEX = "0123456789abcdef"
full_ids = st.text(HEX, min_size=64, max_size=64)
id_sets = st.lists(full_ids, min_size=1, max_size=30, unique=True)


def sha(s: str | bytes) -> str:
    data = s.encode() if isinstance(s, str) else s
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- generation, truncation, validation ---------------------------------------


def test_generate_id_shape_and_uniqueness() -> None:
    ids = {generate_id() for _ in range(200)}
    assert len(ids) == 200
    for i in ids:
        assert len(i) == FULL_LEN
        assert is_full_id(i)
        assert not truncate_id(i).isdigit()


def test_generate_id_retries_all_numeric_short_ids() -> None:
    numeric = bytes.fromhex("0123456789" + "01" + "ab" * 26)  # hex starts "0123456789 01"
    assert numeric.hex()[:SHORT_LEN].isdigit()
    good = bytes.fromhex("0123456789" + "0a" + "cd" * 26)
    draws = iter([numeric, numeric, good])
    assert generate_id(lambda n: next(draws)) == good.hex()
    # A short ID with a letter anywhere in it is fine, even '1e10'-like ones.
    sci = bytes.fromhex("1e1000000000" + "00" * 26)
    assert generate_id(lambda n: sci) == sci.hex()


@FAST
@given(full_ids, st.sampled_from(["", "sha256:", "sha512:"]))
def test_truncate_id(h: str, algo: str) -> None:
    assert truncate_id(algo + h) == h[:12]
    assert strip_algorithm(algo + h) == h


def test_truncate_short_inputs() -> None:
    assert truncate_id("abc") == "abc"
    assert truncate_id("sha256:abc") == "abc"
    assert truncate_id("") == ""


@FAST
@given(full_ids)
def test_full_id_validation(h: str) -> None:
    assert is_full_id(h)
    assert is_full_id("sha256:" + h)
    assert validate_id(h) == h
    assert validate_id("sha256:" + h) == h
    for bad in (h[:-1], h + "0", h.upper() if h != h.upper() else h[:-1] + "g",
                "sha512:" + h, h + "\n", " " + h):
        assert not is_full_id(bad)
        with pytest.raises(InvalidParameter):
            validate_id(bad)


# --- image ID and chain IDs ------------------------------------------------------


@FAST
@given(st.binary(max_size=2000))
def test_image_id_is_sha256_of_exact_bytes(data: bytes) -> None:
    assert image_id(data) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_image_id_is_byte_exact() -> None:
    a = b'{"architecture":"amd64","os":"linux"}'
    b = b'{"os":"linux","architecture":"amd64"}'
    assert image_id(a) != image_id(b)
    assert image_id(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_chain_ids_known_vectors() -> None:
    d1 = "sha256:" + "1" * 64
    d2 = "sha256:" + "2" * 64
    d3 = "sha256:" + "3" * 64
    c2 = "sha256:" + hashlib.sha256((d1 + " " + d2).encode()).hexdigest()
    c3 = "sha256:" + hashlib.sha256((c2 + " " + d3).encode()).hexdigest()
    assert chain_ids([]) == []
    assert chain_ids([d1]) == [d1]
    assert chain_ids([d1, d2]) == [d1, c2]
    assert chain_ids([d1, d2, d3]) == [d1, c2, c3]
    assert chain_id([d1, d2, d3]) == c3
    assert chain_id([d1]) == d1


def test_chain_id_of_busybox_like_stack() -> None:
    # Two real-looking diff IDs, chain computed independently by hand.
    a = "sha256:" + hashlib.sha256(b"layer-a").hexdigest()
    b = "sha256:" + hashlib.sha256(b"layer-b").hexdigest()
    expected = hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_id([a, b]) == "sha256:" + expected


@FAST
@given(st.lists(full_ids.map(lambda h: "sha256:" + h), min_size=1, max_size=8))
def test_chain_ids_recurrence(diff_ids: list[str]) -> None:
    chains = chain_ids(diff_ids)
    assert len(chains) == len(diff_ids)
    assert chains[0] == diff_ids[0]
    for n in range(1, len(diff_ids)):
        assert chains[n] == sha(chains[n - 1] + " " + diff_ids[n])
    # A prefix of the stack has a prefix of the chain.
    assert chain_ids(diff_ids[:-1]) == chains[:-1]


def test_chain_ids_reject_bad_input() -> None:
    with pytest.raises(InvalidParameter):
        chain_ids(["nope"])
    with pytest.raises(InvalidParameter):
        chain_ids(["sha256:" + "1" * 64, "sha256:123"])
    with pytest.raises(InvalidParameter):
        chain_id([])


# --- prefix lookup -----------------------------------------------------------------


def matching(ids: list[str], prefix: str) -> set[str]:
    return {i for i in ids if i.startswith(prefix)}


@FAST
@given(id_sets, st.data())
def test_prefix_index_matches_brute_force(ids: list[str], data: st.DataObject) -> None:
    idx = PrefixIndex(ids)
    assert len(idx) == len(ids)
    source = data.draw(st.sampled_from(ids))
    n = data.draw(st.integers(1, 64))
    prefix = source[:n]
    hits = matching(ids, prefix)
    for query in (prefix, "sha256:" + prefix):
        if len(hits) == 1:
            assert idx.get(query) == source
            assert resolve_prefix(query, ids) == source
        else:
            with pytest.raises(AmbiguousPrefix) as exc:
                idx.get(query)
            assert str(exc.value) == f"multiple IDs found with provided prefix: {query}"
            with pytest.raises(AmbiguousPrefix):
                resolve_prefix(query, ids)


@FAST
@given(id_sets)
def test_unique_prefix_always_resolves(ids: list[str]) -> None:
    """The shortest unique prefix of every ID resolves to it; one shorter does not."""
    idx = PrefixIndex("sha256:" + i for i in ids)
    for i in ids:
        n = next(k for k in range(1, 65) if matching(ids, i[:k]) == {i})
        assert idx.get(i[:n]) == "sha256:" + i  # stored form is returned
        assert resolve_prefix(i[:n], ids) == i
        if n > 1:
            with pytest.raises(AmbiguousPrefix):
                idx.get(i[: n - 1])
        assert idx.get(i) == "sha256:" + i
        assert idx.get("sha256:" + i) == "sha256:" + i


@FAST
@given(id_sets, st.text(HEX, min_size=1, max_size=10))
def test_not_found(ids: list[str], prefix: str) -> None:
    assume(not matching(ids, prefix))
    idx = PrefixIndex(ids)
    with pytest.raises(IDNotFound) as exc:
        idx.get(prefix)
    assert isinstance(exc.value, NotFound) and exc.value.status == 404
    with pytest.raises(IDNotFound):
        resolve_prefix(prefix, ids)
    with pytest.raises(ImageNotFound, match=f"^No such image: {prefix}$"):
        resolve_prefix(prefix, ids, not_found=lambda p: ImageNotFound(f"No such image: {p}"))


@FAST
@given(id_sets, st.data())
def test_add_delete_keeps_index_consistent(ids: list[str], data: st.DataObject) -> None:
    idx = PrefixIndex()
    live: set[str] = set()
    ops = data.draw(st.lists(st.tuples(st.booleans(), st.sampled_from(ids)), max_size=40))
    for add, i in ops:
        if add:
            idx.add(i)
            live.add(i)
        elif i in live:
            idx.delete(i)
            live.discard(i)
        else:
            with pytest.raises(IDNotFound):
                idx.delete(i)
        assert len(idx) == len(live)
        assert sorted(idx) == sorted(live)
    for i in ids:
        assert (i in idx) == (i in live)
        if i in live:
            assert idx.get(i) == i
        else:
            with pytest.raises(IDNotFound):
                idx.get(i)


def test_prefix_edge_cases() -> None:
    a = "abc" + "0" * 61
    b = "abd" + "0" * 61
    idx = PrefixIndex([a, b], not_found=lambda p: ImageNotFound(f"No such image: {p}"))
    assert idx.get("abc") == a
    with pytest.raises(AmbiguousPrefix, match="^multiple IDs found with provided prefix: ab$"):
        idx.get("ab")
    assert isinstance(AmbiguousPrefix("x"), InvalidParameter)
    with pytest.raises(ImageNotFound):
        idx.get("ff")
    with pytest.raises(IDNotFound):
        idx.get("ff", not_found=lambda p: IDNotFound(p))
    for empty in ("", "sha256:"):
        with pytest.raises(InvalidParameter, match="prefix can't be empty"):
            idx.get(empty)
        with pytest.raises(InvalidParameter):
            resolve_prefix(empty, [a])
    # Case-sensitive, like docker.
    with pytest.raises(ImageNotFound):
        idx.get("ABC")
    # Re-adding is idempotent; discard of a missing ID is silent.
    idx.add(a)
    assert len(idx) == 2
    idx.discard("f" * 64)
    idx.discard(a)
    assert idx.get("ab") == b
    with pytest.raises(InvalidParameter):
        idx.add("")
    with pytest.raises(InvalidParameter):
        idx.add("ab cd")


def test_resolve_prefix_candidates() -> None:
    a = "sha256:" + "ab" * 32
    # The same ID twice (or in both forms) is one match, not an ambiguity.
    assert resolve_prefix("abab", [a, a]) == a
    assert resolve_prefix("abab", [a, a.removeprefix("sha256:")]) == a
    # Candidates that do not start with the prefix are ignored (SQL LIKE is
    # case-insensitive for ASCII, so a store may hand over extra rows).
    assert resolve_prefix("abab", ["ABAB" + "0" * 60, a]) == a
    assert resolve_prefix("sha256:abab", iter([a])) == a
    with pytest.raises(IDNotFound, match="^no such id: cd$"):
        resolve_prefix("cd", [a])


def test_prefix_index_many_ids() -> None:
    ids = [generate_id() for _ in range(2000)]
    idx = PrefixIndex(ids)
    for i in itertools.islice(ids, 200):
        assert idx.get(i[:16]) == i
