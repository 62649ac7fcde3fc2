"""The docker CLI's local manifest lists: `<docker config dir>/manifests/
<list ref>/<manifest ref>` (":" as "-", "/" as "_"), one JSON file per entry
in the shape of docker's `types.ImageManifest`, so that lists made by either
CLI are read by the other. Also the JSON docker prints for such entries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..distribution.credentials import docker_config_dir
from ..mediatypes import DOCKER_MANIFEST, OCI_MANIFEST
from ..reference import Reference, parse
from . import gojson


class NotFound(Exception):
    def __init__(self, ref: object) -> None:
        super().__init__(f"No such manifest: {ref}")


def platform(p: dict[str, Any]) -> dict[str, Any]:
    """An OCI platform in Go's field order (architecture and os always there)."""
    out: dict[str, Any] = {"architecture": p.get("architecture") or "", "os": p.get("os") or ""}
    for k in ("os.version", "os.features", "variant"):
        if p.get(k):
            out[k] = p[k]
    return out


def descriptor(d: dict[str, Any]) -> dict[str, Any]:
    """An OCI descriptor in Go's field order, empty optional fields left out."""
    out: dict[str, Any] = {"mediaType": d.get("mediaType") or "", "digest": d.get("digest") or "",
                           "size": int(d.get("size") or 0)}
    for k in ("urls", "annotations", "data"):
        if d.get(k):
            out[k] = d[k]
    if d.get("platform") is not None:
        out["platform"] = platform(d["platform"])
    if d.get("artifactType"):
        out["artifactType"] = d["artifactType"]
    return out


@dataclass
class ImageManifest:
    """docker's types.ImageManifest: the reference it was added as, its
    descriptor (with the platform annotate edits), the registry's bytes, and
    the manifest as JSON (`payload`; the registry's bytes when fetched)."""

    ref: Reference
    descriptor: dict[str, Any]
    raw: bytes
    payload: bytes

    @property
    def media_type(self) -> str:
        return str(self.descriptor.get("mediaType") or "")

    @property
    def is_oci(self) -> bool:
        return self.media_type == OCI_MANIFEST

    def to_go(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Ref": str(self.ref), "Descriptor": descriptor(self.descriptor)}
        if self.raw:
            out["Raw"] = base64.b64encode(self.raw).decode()
        if self.payload:
            out["OCIManifest" if self.is_oci else "SchemaV2Manifest"] = gojson.Raw(self.payload)
        return out

    def blobs(self) -> list[str]:
        """The config's and the layers' digests (what a cross-repository push mounts)."""
        doc = json.loads(self.payload or self.raw)
        return [d["digest"] for d in [doc.get("config") or {}, *(doc.get("layers") or [])]
                if d.get("digest")]

    @classmethod
    def from_go(cls, data: bytes, filename: Path) -> "ImageManifest":
        """Parse an entry file; entries from before docker kept a descriptor
        carry `Digest` and `Platform` instead."""
        doc = json.loads(data)
        payload = _raw_field(data, "SchemaV2Manifest") or _raw_field(data, "OCIManifest") or b""
        try:
            raw = base64.b64decode(doc.get("Raw") or "")
        except binascii.Error:
            raw = b""
        desc = doc.get("Descriptor") or {}
        if doc.get("Digest"):
            got = sha256(payload)
            if got != doc["Digest"]:
                raise ValueError(f"invalid manifest file {filename}: image manifest digest "
                                 f"mismatch ({doc['Digest']} != {got})")
            media = (json.loads(payload).get("mediaType") if payload else "") or DOCKER_MANIFEST
            desc = {"mediaType": media, "digest": got, "size": len(payload),
                    "platform": doc.get("Platform")}
        return cls(parse(doc["Ref"]), desc, raw, payload)


def _raw_field(data: bytes, name: str) -> bytes | None:
    """The bytes of a top-level member's value, as Go hands them to UnmarshalJSON."""
    doc = json.loads(data)
    if not isinstance(doc.get(name), dict):
        return None
    dec = json.JSONDecoder()
    text = data.decode()
    key = json.dumps(name)
    i = text.index("{") + 1  # walk the top-level members to find the value's span
    while True:
        while text[i] in " \t\r\n,":
            i += 1
        k, i = dec.raw_decode(text, i)
        while text[i] in " \t\r\n:":
            i += 1
        _, end = dec.raw_decode(text, i)
        if json.dumps(k) == key:
            return text[i:end].encode()
        i = end


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def filesafe(ref: object) -> str:
    return str(ref).replace(":", "-").replace("/", "_")


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or docker_config_dir() / "manifests"

    def _list_dir(self, list_ref: object) -> Path:
        return self.root / filesafe(list_ref)

    def get(self, list_ref: object, ref: object) -> ImageManifest:
        path = self._list_dir(list_ref) / filesafe(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(ref) from None
        return ImageManifest.from_go(data, path)

    def get_list(self, list_ref: object) -> list[ImageManifest]:
        d = self._list_dir(list_ref)
        try:
            names = sorted(n for n in os.listdir(d) if not n.startswith("."))
        except FileNotFoundError:
            raise NotFound(list_ref) from None
        return [ImageManifest.from_go((d / n).read_bytes(), d / n) for n in names]

    def save(self, list_ref: object, ref: object, image: ImageManifest) -> None:
        d = self._list_dir(list_ref)
        d.mkdir(parents=True, exist_ok=True, mode=0o755)
        path = d / filesafe(ref)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(gojson.marshal(image.to_go()))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    def remove(self, list_ref: object) -> None:
        shutil.rmtree(self._list_dir(list_ref), ignore_errors=True)
