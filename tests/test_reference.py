"""Image reference grammar and normalisation (dockyard.reference)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dockyard.errors import InvalidParameter, InvalidReference
from dockyard.reference import (
    Reference,
    familiar_name,
    familiar_string,
    is_digest,
    is_identifier,
    is_tag,
    parse,
    parse_docker_ref,
    parse_normalized,
    registry_host,
    split_domain,
    validate_digest,
    validate_tag,
)

FAST = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

SHA256_F = "sha256:" + "f" * 64
SHA256_A = "sha256:" + "a" * 64

# --- strategies built from the grammar pieces --------------------------------

LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
DOMAIN_CHARS = LOWER_ALNUM + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
WORD = DOMAIN_CHARS + "_"
HEX = "0123456789abcdef"

alnum = st.text(LOWER_ALNUM, min_size=1, max_size=8)
separator = st.one_of(
    st.sampled_from([".", "_", "__"]), st.integers(1, 3).map(lambda n: "-" * n)
)


@st.composite
def path_components(draw: st.DrawFn) -> str:
    parts = [draw(alnum)]
    for _ in range(draw(st.integers(0, 3))):
        parts.append(draw(separator))
        parts.append(draw(alnum))
    return "".join(parts)


@st.composite
def paths(draw: st.DrawFn) -> str:
    path = "/".join(draw(st.lists(path_components(), min_size=1, max_size=4)))
    assume(len(path) <= 255)
    return path


@st.composite
def domain_components(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from(DOMAIN_CHARS))
    if draw(st.booleans()):
        return first
    middle = draw(st.text(DOMAIN_CHARS + "-", max_size=6))
    return first + middle + draw(st.sampled_from(DOMAIN_CHARS))


ports = st.integers(0, 65535).map(lambda p: f":{p}")
ipv6 = st.sampled_from(
    ["[::1]", "[2001:db8::1]", "[fc00:1:2:3:4:5:6:7]", "[2001:DB8::]", "[fe80::a:b]"]
)


@st.composite
def domains(draw: st.DrawFn) -> str:
    host = draw(
        st.one_of(
            st.just("localhost"),
            ipv6,
            st.lists(domain_components(), min_size=1, max_size=4).map(".".join),
        )
    )
    return host + (draw(ports) if draw(st.booleans()) else "")


@st.composite
def tags(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(WORD)) + draw(st.text(WORD + ".-", max_size=40))


@st.composite
def digests(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["sha256", "sha384", "sha512", "other"]))
    sizes = {"sha256": 64, "sha384": 96, "sha512": 128}
    if kind in sizes:
        return kind + ":" + draw(st.text(HEX, min_size=sizes[kind], max_size=sizes[kind]))
    # An unregistered algorithm: reference grammar and OCI grammar both hold.
    comp = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=3).flatmap(
        lambda a: st.text(LOWER_ALNUM, max_size=3).map(lambda b: a + b)
    )
    algo = draw(st.lists(comp, min_size=1, max_size=3))
    seps = [draw(st.sampled_from("-_+.")) for _ in algo[1:]]
    name = algo[0] + "".join(s + c for s, c in zip(seps, algo[1:]))
    assume(name not in sizes)
    return name + ":" + draw(st.text(HEX + "ABCDEF", min_size=32, max_size=80))


optional_tags = st.one_of(st.none(), tags())
optional_digests = st.one_of(st.none(), digests())


def build(domain: str, path: str, tag: str | None, digest: str | None) -> str:
    s = f"{domain}/{path}" if domain else path
    if tag is not None:
        s += ":" + tag
    if digest is not None:
        s += "@" + digest
    return s


# --- strict parse ---------------------------------------------------------------


@FAST
@given(domains(), paths(), optional_tags, optional_digests)
def test_parse_roundtrip_with_domain(
    domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    s = build(domain, path, tag, digest)
    ref = parse(s)
    assert str(ref) == s
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.name == f"{domain}/{path}"
    assert parse(str(ref)) == ref
    assert Reference(domain, path, tag, digest) == ref


@FAST
@given(paths(), optional_tags, optional_digests)
def test_parse_roundtrip_without_domain(path: str, tag: str | None, digest: str | None) -> None:
    s = build("", path, tag, digest)
    ref = parse(s)
    assert str(ref) == s
    assert ref.name == path
    assert (ref.tag, ref.digest) == (tag, digest)
    # Go's greedy split: the first segment is the domain whenever it can be one.
    if "/" in path and "_" not in path.split("/")[0]:
        assert ref.domain == path.split("/")[0]
    else:
        assert ref.domain == ""


# --- normalisation --------------------------------------------------------------


@FAST
@given(
    st.one_of(st.just(""), domains()), paths(), optional_tags, optional_digests
)
def test_normalized_idempotent_and_familiar_roundtrip(
    domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    s = build(domain, path, tag, digest)
    # The only valid-grammar input ParseNormalizedNamed refuses: a bare 64-hex name.
    assume(not is_identifier(s))
    ref = parse_normalized(s)
    if ref.domain == "":
        # Go's quirk, kept: a first segment with '.' or ':' is taken as a domain
        # by splitDockerDomain, but when it is not valid as one (say
        # "a_b.c/x") Parse keeps it in the path and the domain stays empty.
        assert "/" in ref.path
        head = ref.path.split("/")[0]
        assert "." in head or ":" in head
    assert parse_normalized(str(ref)) == ref
    assert parse(str(ref)) == ref
    assert (ref.tag, ref.digest) == (tag, digest)
    if ref.domain == "docker.io":
        assert "/" in ref.path
    fam = ref.familiar()
    first = ref.familiar_name.split("/")[0]
    # Docker's own quirks: a familiar name that starts like a domain, or is a
    # bare 64-hex string, does not parse back to the same reference.
    if not is_identifier(fam) and not (
        "/" in ref.familiar_name
        and ref.domain == "docker.io"
        and ("." in first or first == "localhost")
    ):
        assert parse_normalized(fam) == ref
    assert ref.familiar_name == familiar_name(ref.domain, ref.path)
    assert ref.with_default_tag().tag == (tag if (tag or digest) else "latest")


@FAST
@given(paths(), optional_tags)
def test_familiar_input_is_docker_hub(path: str, tag: str | None) -> None:
    # A path whose first segment cannot be a domain (no '.', no ':').
    assume("." not in path.split("/")[0] and path.split("/")[0] != "localhost")
    assume(not is_identifier(path))
    ref = parse_normalized(build("", path, tag, None))
    assert ref.domain == "docker.io"
    expected = path if "/" in path else "library/" + path
    assert ref.path == expected
    if path.startswith("library/") and path.count("/") == 1:
        assert ref.familiar_name == path.removeprefix("library/")
    else:
        assert ref.familiar_name == path


@FAST
@given(domains(), paths(), optional_tags, optional_digests)
def test_parse_docker_ref_properties(
    domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_docker_ref(build(domain, path, tag, digest))
    if digest is not None:
        assert ref.digest == digest and ref.tag is None
    else:
        assert ref.tag == (tag if tag is not None else "latest")
    assert parse_docker_ref(str(ref)) == ref


# --- invalid input --------------------------------------------------------------


@FAST
@given(domains(), paths(), st.data())
def test_uppercase_path_rejected(domain: str, path: str, data: st.DataObject) -> None:
    letters = [i for i, c in enumerate(path) if c.isalpha()]
    assume(letters)
    i = data.draw(st.sampled_from(letters))
    bad = path[:i] + path[i].upper() + path[i + 1:]
    with pytest.raises(InvalidReference, match="repository name must be lowercase"):
        parse(f"{domain}/{bad}")
    dotted = "example.com"
    with pytest.raises(InvalidReference) as exc:
        parse_normalized(f"{dotted}/{bad}")
    assert str(exc.value) == (
        f"invalid reference format: repository name ({bad}) must be lowercase"
    )


@FAST
@given(alnum, alnum, st.sampled_from(["..", "._", "_.", "-.", ".-", "___", "_-", "-_", "//"]))
def test_bad_separators_rejected(a: str, b: str, sep: str) -> None:
    for s in (a + sep + b, "x.com/" + a + sep + b):
        with pytest.raises(InvalidReference, match="^invalid reference format$"):
            parse(s)
        with pytest.raises(InvalidReference):
            parse_normalized(s)


@FAST
@given(alnum, st.sampled_from([".", "_", "__", "-", "--", "/"]), st.booleans())
def test_leading_or_trailing_separator_rejected(a: str, sep: str, leading: bool) -> None:
    s = sep + a if leading else a + sep
    with pytest.raises(InvalidReference):
        parse("x.com/" + s)
    with pytest.raises(InvalidReference):
        parse_normalized(s)


@FAST
@given(st.integers(256, 400), st.one_of(st.just(""), domains()))
def test_too_long_path_rejected(n: int, domain: str) -> None:
    path = "a" * n
    s = f"{domain}/{path}" if domain else path
    with pytest.raises(
        InvalidReference, match="^repository name must not be more than 255 characters$"
    ):
        parse(s)
    with pytest.raises(InvalidReference, match="must not be more than 255"):
        parse_normalized("x.com/" + path)


@FAST
@given(domains(), st.integers(1, 255))
def test_path_length_limit_excludes_domain(domain: str, n: int) -> None:
    ref = parse(f"{domain}/{'a' * n}")
    assert len(ref.path) == n


@FAST
@given(
    st.sampled_from(["sha256", "sha384", "sha512"]),
    st.integers(32, 200),
)
def test_bad_digest_length_rejected(algo: str, n: int) -> None:
    size = {"sha256": 64, "sha384": 96, "sha512": 128}[algo]
    assume(n != size)
    d = algo + ":" + "f" * n
    assert not is_digest(d)
    with pytest.raises(InvalidReference, match="^invalid checksum digest length$"):
        parse("repo@" + d)


@FAST
@given(st.text("0123456789abcdefABCDEF", min_size=64, max_size=64))
def test_uppercase_hex_in_known_digest_rejected(hexpart: str) -> None:
    assume(hexpart != hexpart.lower())
    with pytest.raises(InvalidReference, match="^invalid checksum digest format$"):
        parse("repo@sha256:" + hexpart)


@FAST
@given(
    st.one_of(
        st.text(HEX, max_size=31).map(lambda h: "sha256:" + h),  # too short for grammar
        st.text(HEX, min_size=32, max_size=40).map(lambda h: "1sha:" + h),  # algo digit
        st.text(HEX, min_size=32, max_size=40).map(lambda h: "sha256:" + h + "g"),
        st.text(HEX, min_size=32, max_size=40).map(lambda h: "sha--x:" + h),
        st.text(HEX, min_size=64, max_size=64).map(lambda h: "sha256" + h),
    )
)
def test_malformed_digest_rejected(d: str) -> None:
    assert not is_digest(d)
    with pytest.raises(InvalidReference):
        parse("repo@" + d)
    with pytest.raises(InvalidReference):
        parse_normalized("repo@" + d)


@FAST
@given(
    st.one_of(
        st.sampled_from(".-").flatmap(lambda c: st.text(WORD, max_size=10).map(lambda t: c + t)),
        st.text(WORD, min_size=129, max_size=200),
        st.tuples(
            st.text(WORD, min_size=1, max_size=5),
            st.sampled_from("!$%&*+,;=?~^'\"()[]{}<> \t\n"),
            st.text(WORD, max_size=5),
        ).map("".join),
        st.just(""),
    )
)
def test_bad_tags_rejected(tag: str) -> None:
    assert not is_tag(tag)
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        validate_tag(tag)
    with pytest.raises(InvalidReference):
        parse("example.com/repo:" + tag)
    with pytest.raises(InvalidReference):
        parse_normalized("repo:" + tag)
    with pytest.raises(InvalidReference):
        parse_normalized("busybox").with_tag(tag)


@FAST
@given(tags())
def test_valid_tags(tag: str) -> None:
    assert is_tag(tag)
    assert validate_tag(tag) == tag
    assert parse_normalized("busybox").with_tag(tag).tag == tag


@FAST
@given(st.text(HEX, min_size=64, max_size=64))
def test_hex_names_rejected(h: str) -> None:
    with pytest.raises(InvalidReference) as exc:
        parse_normalized(h)
    assert str(exc.value) == (
        f"invalid repository name ({h}), cannot specify 64-byte hexadecimal strings"
    )
    # With a domain (or a tag) it is a valid name.
    assert parse_normalized("docker.io/" + h).path == "library/" + h
    assert parse_normalized(h + ":v1").tag == "v1"


@FAST
@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_invalid_reference(s: str) -> None:
    for f in (parse, parse_normalized, parse_docker_ref):
        try:
            ref = f(s)
        except InvalidReference:
            continue
        assert parse(str(ref)) == ref


# --- table tests: docker's examples -------------------------------------------


@pytest.mark.parametrize(
    ("s", "domain", "path", "tag", "digest"),
    [
        ("test_com", "", "test_com", None, None),
        ("test.com:tag", "", "test.com", "tag", None),
        ("test.com:5000", "", "test.com", "5000", None),
        ("test.com/repo:tag", "test.com", "repo", "tag", None),
        ("test:5000/repo", "test:5000", "repo", None, None),
        ("test:5000/repo:tag", "test:5000", "repo", "tag", None),
        ("test:5000/repo@" + SHA256_F, "test:5000", "repo", None, SHA256_F),
        ("test:5000/repo:tag@" + SHA256_F, "test:5000", "repo", "tag", SHA256_F),
        ("lowercase:Uppercase", "", "lowercase", "Uppercase", None),
        ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", None, None),
        ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io",
         "test.example.com/my-app", "test.example.com", None),
        ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", None),
        ("foo_bar.com:8080", "", "foo_bar.com", "8080", None),
        ("foo/foo_bar.com:8080", "foo", "foo_bar.com", "8080", None),
        ("192.168.1.1", "", "192.168.1.1", None, None),
        ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", None),
        ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", None, None),
        ("[2001:db8::1]:5000/repo:tag@" + SHA256_F, "[2001:db8::1]:5000", "repo", "tag",
         SHA256_F),
        ("[::1]:5000/repo", "[::1]:5000", "repo", None, None),
        ("a/" * 127 + "a:tag-puts-this-over-max", "a", "a/" * 126 + "a",
         "tag-puts-this-over-max", None),
        ("example.com/" + "a" * 255 + ":tag", "example.com", "a" * 255, "tag", None),
        ("docker.io/library/busybox", "docker.io", "library/busybox", None, None),
        ("x.io/r@sha512:" + "f" * 128, "x.io", "r", None, "sha512:" + "f" * 128),
        ("r@sha384:" + "0" * 96, "", "r", None, "sha384:" + "0" * 96),
        ("r@blake3:" + "ab" * 16, "", "r", None, "blake3:" + "ab" * 16),
        ("r@sha256+b64u:" + "AB" * 16, "", "r", None, "sha256+b64u:" + "AB" * 16),
        ("localhost:5000/a__b/c---d", "localhost:5000", "a__b/c---d", None, None),
    ],
)
def test_parse_table(
    s: str, domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    ref = parse(s)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert str(ref) == s


@pytest.mark.parametrize(
    ("s", "message"),
    [
        ("", "repository name must have at least one component"),
        (":justtag", "invalid reference format"),
        ("@" + SHA256_F, "invalid reference format"),
        ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
        ("Uppercase:tag", "repository name must be lowercase"),
        ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
        ("domain/" + "a" * 256 + ":tag", "repository name must not be more than 255 characters"),
        ("aa/asdf$$^/aa", "invalid reference format"),
        ("[2001:db8::1]", "invalid reference format"),
        ("[2001:db8::1]:5000", "invalid reference format"),
        ("[2001:db8::1]:tag", "invalid reference format"),
        ("[fe80::1%eth0]:5000/repo", "invalid reference format"),
        ("[fe80::1%@invalidzone]:5000/repo", "invalid reference format"),
        ("busybox\n", "invalid reference format"),
        ("busybox:latest\n", "invalid reference format"),
        ("busybox ", "invalid reference format"),
        ("repo@SHA256:" + "f" * 64, "invalid checksum digest format"),
        ("repo@Blake3:" + "f" * 64, "invalid checksum digest format"),
    ],
)
def test_parse_errors(s: str, message: str) -> None:
    with pytest.raises(InvalidReference) as exc:
        parse(s)
    assert str(exc.value) == message
    assert isinstance(exc.value, InvalidParameter)
    assert exc.value.status == 400


@pytest.mark.parametrize(
    ("s", "full", "familiar", "docker_ref"),
    [
        ("busybox", "docker.io/library/busybox", "busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36",
         "docker.io/library/busybox:1.36"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest",
         "busybox:latest", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox", "busybox",
         "docker.io/library/busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox", "busybox",
         "docker.io/library/busybox:latest"),
        ("index.docker.io/fooo/bar", "docker.io/fooo/bar", "fooo/bar",
         "docker.io/fooo/bar:latest"),
        ("library/ubuntu", "docker.io/library/ubuntu", "ubuntu",
         "docker.io/library/ubuntu:latest"),
        ("library/foo/bar", "docker.io/library/foo/bar", "library/foo/bar",
         "docker.io/library/foo/bar:latest"),
        ("foo/bar", "docker.io/foo/bar", "foo/bar", "docker.io/foo/bar:latest"),
        ("docker.io/foo/bar", "docker.io/foo/bar", "foo/bar", "docker.io/foo/bar:latest"),
        ("other/library", "docker.io/other/library", "other/library",
         "docker.io/other/library:latest"),
        ("store/foo/bar", "docker.io/store/foo/bar", "store/foo/bar",
         "docker.io/store/foo/bar:latest"),
        ("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase",
         "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase:latest"),
        ("example.com/privatebase", "example.com/privatebase", "example.com/privatebase",
         "example.com/privatebase:latest"),
        ("localhost/foo", "localhost/foo", "localhost/foo", "localhost/foo:latest"),
        ("localhost:5000/foo:v1", "localhost:5000/foo:v1", "localhost:5000/foo:v1",
         "localhost:5000/foo:v1"),
        ("Foo/bar", "Foo/bar", "Foo/bar", "Foo/bar:latest"),
        ("FOO/bar", "FOO/bar", "FOO/bar", "FOO/bar:latest"),
        ("test_com/foo", "docker.io/test_com/foo", "test_com/foo",
         "docker.io/test_com/foo:latest"),
        ("test.com:5000", "docker.io/library/test.com:5000", "test.com:5000",
         "docker.io/library/test.com:5000"),
        ("192.168.0.1", "docker.io/library/192.168.0.1", "192.168.0.1",
         "docker.io/library/192.168.0.1:latest"),
        ("[fc00::1]:5000/docker", "[fc00::1]:5000/docker", "[fc00::1]:5000/docker",
         "[fc00::1]:5000/docker:latest"),
        ("busybox:latest@" + SHA256_A, "docker.io/library/busybox:latest@" + SHA256_A,
         "busybox:latest@" + SHA256_A, "docker.io/library/busybox@" + SHA256_A),
        ("busybox@" + SHA256_A, "docker.io/library/busybox@" + SHA256_A,
         "busybox@" + SHA256_A, "docker.io/library/busybox@" + SHA256_A),
        ("docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
         "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
         "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
         "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
         ":latest"),
        ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
         "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
         "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
         "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"
         ":latest"),
        # Go's quirk, kept: split as a domain, then not valid as one.
        ("foo_bar.com/x", "foo_bar.com/x", "foo_bar.com/x", "foo_bar.com/x:latest"),
        ("dock__er/docker", "docker.io/dock__er/docker", "dock__er/docker",
         "docker.io/dock__er/docker:latest"),
        ("docker---rules/docker", "docker.io/docker---rules/docker", "docker---rules/docker",
         "docker.io/docker---rules/docker:latest"),
    ],
)
def test_normalize_table(s: str, full: str, familiar: str, docker_ref: str) -> None:
    ref = parse_normalized(s)
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert str(parse_docker_ref(s)) == docker_ref


@pytest.mark.parametrize(
    ("s", "message"),
    [
        ("Busybox",
         "invalid reference format: repository name (library/Busybox) must be lowercase"),
        ("docker/Docker",
         "invalid reference format: repository name (docker/Docker) must be lowercase"),
        ("docker.io/docker/Docker:tag",
         "invalid reference format: repository name (docker/Docker) must be lowercase"),
        ("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
         "invalid repository name"
         " (1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a),"
         " cannot specify 64-byte hexadecimal strings"),
        ("https://github.com/docker/docker", "invalid reference format"),
        ("-docker", "invalid reference format"),
        ("-docker/docker", "invalid reference format"),
        ("-docker.io/docker/docker", "invalid reference format"),
        ("docker///docker", "invalid reference format"),
        ("docker.io/docker///docker", "invalid reference format"),
        ("[fc00::1]", "invalid reference format"),
        ("[fc00::1]:5000", "invalid reference format"),
        ("fc00::1:5000/debian", "invalid reference format"),
        ("[fe80::1%eth0]:5000/debian", "invalid reference format"),
        ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid reference format"),
        ("docker-/docker", "invalid reference format"),
        ("-docker-/docker", "invalid reference format"),
        ("____/____", "invalid reference format"),
        ("_docker/_docker", "invalid reference format"),
        ("dock..er/docker", "invalid reference format"),
        ("dock_.er/docker", "invalid reference format"),
        ("dock-.er/docker", "invalid reference format"),
        ("docker/", "invalid reference format"),
        ("docker.io/", "invalid reference format"),
        ("", "invalid reference format"),
        ("busybox:", "invalid reference format"),
        ("busybox@", "invalid reference format"),
        ("busybox:.tag", "invalid reference format"),
        ("_".join(["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"] * 4)
         + "/docker",
         "repository name must not be more than 255 characters"),
        ("validname@sha256:" + "f" * 63, "invalid checksum digest length"),
    ],
)
def test_normalize_errors(s: str, message: str) -> None:
    with pytest.raises(InvalidReference) as exc:
        parse_normalized(s)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("name", "domain", "remote"),
    [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("foo:tag", "docker.io", "library/foo:tag"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        ("index.docker.io/foo/bar", "docker.io", "foo/bar"),
        ("localhost/foo", "localhost", "foo"),
        ("Foo/bar", "Foo", "bar"),
        ("registry-1.docker.io/foo", "registry-1.docker.io", "foo"),
    ],
)
def test_split_domain(name: str, domain: str, remote: str) -> None:
    assert split_domain(name) == (domain, remote)


def test_reference_api() -> None:
    ref = parse_normalized("busybox")
    assert ref == Reference("docker.io", "library/busybox")
    assert ref.name == "docker.io/library/busybox"
    assert ref.familiar_name == "busybox"
    assert ref.is_name_only
    tagged = ref.with_default_tag()
    assert str(tagged) == "docker.io/library/busybox:latest"
    assert tagged.familiar() == "busybox:latest"
    assert tagged.with_default_tag() is tagged
    assert str(ref.with_tag("1.36")) == "docker.io/library/busybox:1.36"
    both = tagged.with_digest(SHA256_A)
    assert str(both) == "docker.io/library/busybox:latest@" + SHA256_A
    assert str(both.with_tag("v2")) == "docker.io/library/busybox:v2@" + SHA256_A
    assert both.trimmed() == ref
    assert ref.with_digest(SHA256_A).with_default_tag().tag is None
    assert parse_normalized("foo/bar").familiar_name == "foo/bar"
    assert parse_normalized("docker.io/foo/bar:1").familiar() == "foo/bar:1"
    assert ref.registry_host == "registry-1.docker.io"
    assert parse_normalized("quay.io/a/b").registry_host == "quay.io"
    # Hashable and frozen: usable as dict keys.
    assert {ref: 1}[Reference("docker.io", "library/busybox")] == 1
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("domain", "path", "tag", "digest"),
    [
        ("docker.io", "library/Busybox", None, None),
        ("docker.io", "", None, None),
        ("bad domain", "x", None, None),
        ("docker.io", "x", "", None),
        ("docker.io", "x", "-x", None),
        ("docker.io", "x", None, "sha256:abc"),
        ("docker.io", "a" * 256, None, None),
    ],
)
def test_reference_constructor_validates(
    domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    with pytest.raises(InvalidReference):
        Reference(domain, path, tag, digest)


def test_registry_host() -> None:
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert registry_host("index.docker.io") == "registry-1.docker.io"
    assert registry_host("") == "registry-1.docker.io"
    assert registry_host("registry-1.docker.io") == "registry-1.docker.io"
    assert registry_host("localhost:5000") == "localhost:5000"
    assert registry_host("[::1]:5000") == "[::1]:5000"


def test_digest_helpers() -> None:
    assert is_digest(SHA256_F)
    assert is_digest("sha512:" + "0" * 128)
    assert not is_digest("sha256:" + "F" * 64)
    assert not is_digest("sha256:" + "f" * 63)
    assert not is_digest("sha256")
    assert not is_digest("f" * 64)
    assert validate_digest(SHA256_F) == SHA256_F
    with pytest.raises(InvalidReference, match="^invalid digest format$"):
        validate_digest("nope")
    with pytest.raises(InvalidReference, match="^invalid checksum digest length$"):
        validate_digest("sha256:" + "f" * 40)
    assert is_identifier("f" * 64)
    assert not is_identifier("F" * 64)
    assert not is_identifier("f" * 64 + "\n")


@pytest.mark.parametrize(
    ("s", "familiar"),
    [
        ("docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox", "busybox"),
        ("docker.io/foo/bar:1", "foo/bar:1"),
        ("docker.io/library/foo/bar", "library/foo/bar"),
        ("docker.io/library/busybox@" + SHA256_A, "busybox@" + SHA256_A),
        ("localhost:5000/x:y", "localhost:5000/x:y"),
        ("quay.io/a/b:c", "quay.io/a/b:c"),
        ("not a reference", "not a reference"),
    ],
)
def test_familiar_string(s: str, familiar: str) -> None:
    assert familiar_string(s) == familiar


@FAST
@given(domains(), paths(), optional_tags, optional_digests)
def test_familiar_string_matches_reference(
    domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_normalized(build(domain, path, tag, digest))
    assert familiar_string(ref) == familiar_string(str(ref)) == ref.familiar()
