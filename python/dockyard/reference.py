"""Image references: the grammar and normalisation of docker's distribution/reference.

Grammar (as in distribution/reference v0.6, which docker uses)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path
    domain           := host [":" port-number]
    host             := domain-name | "[" IPv6address "]"
    domain-name      := domain-component ["." domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    port-number      := /[0-9]+/
    path             := path-component ["/" path-component]*
    path-component   := alpha-numeric [separator alpha-numeric]*
    alpha-numeric    := /[a-z0-9]+/
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex    ; algorithm per the grammar, hex >= 32

Two parsers, as in Go:

* :func:`parse` is ``reference.Parse``: strict, no normalisation.  The first
  path segment is taken as the domain whenever it *could* be one
  (``foo/bar`` -> domain ``foo``), exactly like Go.
* :func:`parse_normalized` is ``reference.ParseNormalizedNamed``: the docker
  UI rules (``busybox`` -> ``docker.io/library/busybox``,
  ``index.docker.io`` -> ``docker.io``).  :func:`parse_docker_ref` adds
  ``:latest`` like ``ParseDockerRef``.

Digests: the algorithms docker registers (sha256, sha384, sha512) are checked
as go-digest does (exact length, lowercase hex).  Other algorithms are accepted
when they satisfy both the reference grammar and the OCI digest grammar
(lowercase algorithm); docker itself would answer "unsupported digest
algorithm" for them.

The path may be at most 255 characters; the domain does not count (the rule
of distribution/reference since v0.5, "Exclude domain from name length
check").

All errors are :class:`dockyard.errors.InvalidReference` with Go's messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidReference

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "LEGACY_DEFAULT_DOMAIN",
    "DOCKER_HUB_REGISTRY",
    "OFFICIAL_REPO_PREFIX",
    "NAME_TOTAL_LENGTH_MAX",
    "KNOWN_DIGEST_ALGORITHMS",
    "Reference",
    "parse",
    "parse_normalized",
    "parse_docker_ref",
    "split_domain",
    "is_digest",
    "validate_digest",
    "is_tag",
    "validate_tag",
    "is_identifier",
    "registry_host",
    "familiar_name",
    "familiar_string",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
LOCALHOST = "localhost"
NAME_TOTAL_LENGTH_MAX = 255

#: Algorithms docker registers, with the length of their hex encoding.
KNOWN_DIGEST_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha384": 96, "sha512": 128}

# Messages, verbatim from distribution/reference and go-digest.
ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_DIGEST_INVALID_FORMAT = "invalid digest format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_CHECKSUM_INVALID_FORMAT = "invalid checksum digest format"
ERR_CHECKSUM_INVALID_LENGTH = "invalid checksum digest length"

# --- grammar pieces (built the same way as regexp.go, written for Python re) ---

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_OPTIONAL_PORT = r"(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # Go's \w is ASCII-only
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_IDENTIFIER = r"[a-f0-9]{64}"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")"
_DOMAIN_AND_PORT = _HOST + _OPTIONAL_PORT
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

# Anchored with fullmatch(); never `$`, which in Python also matches before "\n".
_REFERENCE_RE = re.compile(
    r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?"
)
_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")")
_DOMAIN_RE = re.compile(_DOMAIN_AND_PORT)
_REMOTE_NAME_RE = re.compile(_REMOTE_NAME)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_IDENTIFIER_RE = re.compile(_IDENTIFIER)
# go-digest's DigestRegexp (the OCI grammar), used for algorithms docker does
# not register.
_OCI_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def _digest_error(digest: str) -> str | None:
    """The error go-digest's ``Parse`` gives for `digest`, or None when valid."""
    if _DIGEST_RE.fullmatch(digest) is None:
        # What WithDigest says; Parse never gets here (its regexp has already
        # matched the digest).
        return ERR_DIGEST_INVALID_FORMAT
    algorithm, _, encoded = digest.partition(":")
    size = KNOWN_DIGEST_ALGORITHMS.get(algorithm)
    if size is None:
        if _OCI_DIGEST_RE.fullmatch(digest) is None:
            return ERR_CHECKSUM_INVALID_FORMAT
        return None
    if len(encoded) != size:
        return ERR_CHECKSUM_INVALID_LENGTH
    if any(c not in "0123456789abcdef" for c in encoded):
        return ERR_CHECKSUM_INVALID_FORMAT
    return None


def is_digest(s: str) -> bool:
    """Whether `s` is a valid ``algorithm:hex`` digest."""
    return _digest_error(s) is None


def validate_digest(s: str) -> str:
    """Return `s` if it is a valid digest, else raise :class:`InvalidReference`."""
    err = _digest_error(s)
    if err is not None:
        raise InvalidReference(err)
    return s


def is_tag(s: str) -> bool:
    """Whether `s` is a valid tag (``[\\w][\\w.-]{0,127}``)."""
    return _TAG_RE.fullmatch(s) is not None


def validate_tag(s: str) -> str:
    """Return `s` if it is a valid tag, else raise ``invalid tag format``."""
    if not is_tag(s):
        raise InvalidReference(ERR_TAG_INVALID_FORMAT)
    return s


def is_identifier(s: str) -> bool:
    """Whether `s` is 64 lowercase hex characters (an ID, never a repository name)."""
    return _IDENTIFIER_RE.fullmatch(s) is not None


def registry_host(domain: str) -> str:
    """The host to contact for `domain`: Docker Hub's names map to its registry."""
    if domain in ("", DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN):
        return DOCKER_HUB_REGISTRY
    return domain


def familiar_name(domain: str, path: str) -> str:
    """The short name docker shows: ``docker.io`` and ``library/`` dropped."""
    if domain == DEFAULT_DOMAIN:
        if path.startswith(OFFICIAL_REPO_PREFIX):
            rest = path[len(OFFICIAL_REPO_PREFIX):]
            if "/" not in rest:
                return rest
        return path
    return f"{domain}/{path}" if domain else path


def familiar_string(ref: Reference | str) -> str:
    """``FamiliarString`` of a reference or of a full reference string.

    ``"docker.io/library/busybox:latest"`` -> ``"busybox:latest"``.  A string
    is parsed strictly (stored references are already normalised); one that
    does not parse is returned unchanged, since this is for display.
    """
    if isinstance(ref, Reference):
        return ref.familiar()
    try:
        return parse(ref).familiar()
    except InvalidReference:
        return ref


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed image reference.

    `domain` is ``""`` only for strictly parsed names without a domain (a
    normalised reference always has one).  `tag` and `digest` are None when
    absent.  The constructor validates every field.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.domain and _DOMAIN_RE.fullmatch(self.domain) is None:
            raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
        if _REMOTE_NAME_RE.fullmatch(self.path) is None:
            raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
        if len(self.path) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidReference(ERR_NAME_TOO_LONG)
        if self.tag is not None:
            validate_tag(self.tag)
        if self.digest is not None:
            validate_digest(self.digest)

    @property
    def name(self) -> str:
        """The full repository name, ``domain/path`` (``Named.Name()``)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """``FamiliarName``: ``docker.io/library/busybox`` -> ``busybox``."""
        return familiar_name(self.domain, self.path)

    @property
    def is_name_only(self) -> bool:
        """Neither tag nor digest (``IsNameOnly``)."""
        return self.tag is None and self.digest is None

    def _suffix(self) -> str:
        s = ""
        if self.tag is not None:
            s += ":" + self.tag
        if self.digest is not None:
            s += "@" + self.digest
        return s

    def __str__(self) -> str:
        return self.name + self._suffix()

    def familiar(self) -> str:
        """``FamiliarString``: ``docker.io/library/busybox:latest`` -> ``busybox:latest``."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """A copy with `tag` (validated); a digest is kept, as ``WithTag`` does."""
        return Reference(self.domain, self.path, validate_tag(tag), self.digest)

    def with_digest(self, digest: str) -> Reference:
        """A copy with `digest` (validated); a tag is kept, as ``WithDigest`` does."""
        return Reference(self.domain, self.path, self.tag, validate_digest(digest))

    def with_default_tag(self) -> Reference:
        """``TagNameOnly``: add ``:latest`` when there is neither tag nor digest."""
        if self.is_name_only:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def trimmed(self) -> Reference:
        """The repository alone, without tag or digest (``TrimNamed``)."""
        return Reference(self.domain, self.path)

    @property
    def registry_host(self) -> str:
        """The registry to contact (``docker.io`` -> ``registry-1.docker.io``)."""
        return registry_host(self.domain)


def parse(s: str) -> Reference:
    """``reference.Parse``: strict parsing, no normalisation."""
    if s == "":
        raise InvalidReference(ERR_NAME_EMPTY)
    m = _REFERENCE_RE.fullmatch(s)
    if m is None:
        lowered = s.lower()
        if lowered != s and _REFERENCE_RE.fullmatch(lowered) is not None:
            raise InvalidReference(ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    nm = _NAME_RE.fullmatch(name)
    assert nm is not None  # the reference pattern embeds the name pattern
    domain, path = nm.group(1) or "", nm.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG)
    if digest is not None:
        err = _digest_error(digest)
        if err is not None:
            raise InvalidReference(err)
    return Reference(domain, path, tag, digest)


def split_domain(name: str) -> tuple[str, str]:
    """Docker's ``splitDockerDomain``: the domain and remote name of `name`.

    Normalising: a first segment counts as a domain only if it is
    ``localhost`` or contains ``.`` or ``:`` or an uppercase letter;
    otherwise the domain is ``docker.io``, and single-segment Docker Hub
    names get ``library/``.  ``index.docker.io`` becomes ``docker.io``.
    `name` may carry a tag/digest suffix (it stays on the remote name); it
    is not validated.
    """
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == LOCALHOST:
        domain, remote = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first:
        domain, remote = first, rest
    elif first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def parse_normalized(s: str) -> Reference:
    """``ParseNormalizedNamed``: docker UI names to full ones; no tag is added.

    As in Go, a first segment that looks like a domain (has ``.`` or ``:``)
    but is not a valid one (``foo_bar.com/x``) stays in the path, and the
    result has an empty domain.
    """
    if is_identifier(s):
        raise InvalidReference(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = split_domain(s)
    colon = remainder.find(":")
    remote = remainder[:colon] if colon >= 0 else remainder
    if remote.lower() != remote:
        raise InvalidReference(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    return parse(domain + "/" + remainder)


def parse_docker_ref(s: str) -> Reference:
    """``ParseDockerRef``: normalised, ``:latest`` when there is neither tag nor
    digest, and only the digest when there are both."""
    ref = parse_normalized(s)
    if ref.tag is not None and ref.digest is not None:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return ref.with_default_tag()
