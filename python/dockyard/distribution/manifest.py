"""Manifest formats: Docker schema2 and manifest lists, OCI manifests and
indexes; choosing a platform from a list."""

from __future__ import annotations

import json
import platform as _platform
import re
from dataclasses import dataclass
from typing import Any

from ..errors import RegistryError, RegistryNotFound
from ..mediatypes import (DOCKER_FOREIGN, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX,
                          OCI_LAYERS, OCI_MANIFEST, SCHEMA1)

ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
LISTS = (DOCKER_LIST, OCI_INDEX)
IMAGES = (DOCKER_MANIFEST, OCI_MANIFEST)
LAYER_TYPES = (DOCKER_LAYER, *OCI_LAYERS)


#: The digests a descriptor may carry (go-digest's sha256 and sha512, hex).
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")


def is_digest(x: Any) -> bool:
    return isinstance(x, str) and _DIGEST.fullmatch(x) is not None


def _clip(x: Any) -> str:
    text = json.dumps(x) if not isinstance(x, str) else x
    return text if len(text) <= 200 else text[:200] + "..."


def _entries(doc: dict[str, Any], key: str) -> list[Any]:
    v = doc.get(key) or []
    if not isinstance(v, list):
        raise RegistryError(f"invalid manifest: {key} is not a list")
    return v


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    platform: dict[str, Any] | None = None

    @classmethod
    def of(cls, d: Any) -> "Descriptor":
        """A descriptor from a registry's JSON, checked field by field: its
        digest goes into URLs and its size bounds the download."""
        bad = RegistryError(f"invalid descriptor in manifest: {_clip(d)}")
        if not isinstance(d, dict):
            raise bad
        media, digest, size = d.get("mediaType", ""), d.get("digest"), d.get("size", -1)
        urls, platform = d.get("urls") or [], d.get("platform")
        if (not isinstance(media, str) or not isinstance(size, int) or isinstance(size, bool)
                or not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)
                or not (platform is None or isinstance(platform, dict))):
            raise bad
        if not is_digest(digest):
            raise RegistryError(f"invalid checksum digest format: {_clip(digest)}")
        return cls(media, digest, size, tuple(urls), platform)

    @property
    def short(self) -> str:
        return self.digest.split(":", 1)[-1][:12]


@dataclass(frozen=True)
class Manifest:
    media_type: str
    raw: bytes
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()

    @property
    def is_list(self) -> bool:
        return self.media_type in LISTS


def parse(raw: bytes, content_type: str = "") -> Manifest:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise RegistryError("invalid manifest: not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError("invalid manifest: not a JSON object")
    media = doc.get("mediaType") or content_type.split(";")[0].strip()
    if not media or media == "application/json":
        # OCI allows leaving mediaType out: tell by shape.
        media = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise RegistryError("unsupported manifest format: Docker Image Format v1 (schema 1) "
                            "is deprecated and no longer supported; push the image again "
                            "with a current tool")
    if media in LISTS:
        return Manifest(media, raw, manifests=tuple(Descriptor.of(m)
                                                   for m in _entries(doc, "manifests")))
    if media in IMAGES:
        if "config" not in doc:
            raise RegistryError("invalid manifest: no config")
        layers = tuple(Descriptor.of(m) for m in _entries(doc, "layers"))
        for layer in layers:
            if layer.media_type == DOCKER_FOREIGN or layer.urls:
                raise RegistryError(f"layer {layer.digest} is a foreign layer "
                                    f"({layer.media_type}), which Linux images don't use")
            if layer.media_type and layer.media_type not in LAYER_TYPES:
                raise RegistryError(f"unsupported layer media type {layer.media_type}")
        return Manifest(media, raw, config=Descriptor.of(doc["config"]), layers=layers)
    raise RegistryError(f"unsupported manifest media type {media}")


def host_platform() -> dict[str, str]:
    m = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "armv7l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)
    p = {"os": "linux", "architecture": arch}
    if arch == "arm64":
        p["variant"] = "v8"
    elif arch == "arm":
        p["variant"] = "v7"
    return p


def parse_platform(s: str | None) -> dict[str, str]:
    """`--platform os[/arch[/variant]]`; empty means this host's."""
    if not s:
        return host_platform()
    parts = s.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise RegistryError(f'"{s}": unknown operating system or architecture: invalid argument')
    p = {"os": parts[0], "architecture": parts[1] if len(parts) > 1 else
         host_platform()["architecture"]}
    if len(parts) > 2:
        p["variant"] = parts[2]
    elif p["architecture"] == "arm64":
        p["variant"] = "v8"
    return p


def platform_string(p: dict[str, str]) -> str:
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)


def select(index: Manifest, want: dict[str, str]) -> Descriptor:
    """The list entry for `want`; a missing variant matches any (arm64's v8
    is often left out)."""
    best: Descriptor | None = None
    for d in index.manifests:
        p = d.platform or {}
        if p.get("os") != want["os"] or p.get("architecture") != want["architecture"]:
            continue
        if d.media_type and d.media_type not in IMAGES:
            continue
        if want.get("variant") and p.get("variant") and p["variant"] != want["variant"]:
            continue
        if best is None or p.get("variant") == want.get("variant"):
            best = d
    if best is None:
        raise RegistryNotFound(f"no matching manifest for {platform_string(want)} in the "
                            "manifest list entries")
    return best
