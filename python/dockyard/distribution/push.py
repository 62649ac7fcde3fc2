"""`docker push`: upload an image's layers, config and manifest.

Each layer's blob is found the cheapest way first: a registry that already
has it (a HEAD for each digest we know for that diff ID), a cross-repository
mount from another repository of the same registry, and only then an
upload. A layer that was pulled (or pushed before) sends the compressed blob
kept from then (`store.layers`), byte for byte (gzip or zstd), hashed as it
goes: a kept file that does not match its digest is never finished and is
removed, the layer is then compressed again. That streams the layer's exact
tar, rebuilt from its tar-split record and gzipped on Rust threads, through
a pipe into one chunked PATCH, then closes with a PUT naming the digest; the
blob is kept as it goes up, for the next push elsewhere. Small blobs (the
config) go up monolithically. The manifest goes last (OCI if a layer's blob
has an OCI media type, else Docker's), and the image keeps its ID: the
config bytes are the stored ones.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from .. import _core, reference
from ..errors import ImageNotFound, InvalidParameter, RegistryError, Unauthorized
from ..mediatypes import (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYERS,
                          OCI_MANIFEST)
from ..store.layers import Layer
from .auth import AuthConfig, repo_scope
from .client import Session, error_text
from .progress import Progress, Reporter
from .transfer import TransferConfig

GZIP_TYPES = (DOCKER_LAYER, OCI_LAYERS[1])
#: Blobs a push may reuse as they are (a registry has them, or kept from a pull).
REUSABLE = (*GZIP_TYPES, OCI_LAYERS[2])
CHUNK = 1 << 20
#: (digest, size, media type) of a layer's blob in the target registry.
Blob = tuple[str, int, str]


class Pusher:
    def __init__(self, config: TransferConfig, ref: reference.Reference,
                 auth: AuthConfig | None, progress: Progress | None) -> None:
        self.store = config.store
        self.events = config.events
        self.ref = ref
        self.opts = config.options
        self.session = Session(ref.domain, self.opts, auth or AuthConfig())
        self.report = Reporter(progress)
        self.path = ref.path
        self._done: dict[str, Blob] = {}   # diff_id -> its blob, this push
        self._lock = threading.Lock()

    def connect(self, layers: list[Layer]) -> None:
        scopes = [repo_scope(self.path, ("pull", "push"))]
        sources = sorted({b["repository"] for lay in layers
                          for b in self.store.layers.known_blobs(lay.diff_id)
                          if b["registry"] == self.ref.domain and b["repository"] != self.path})
        scopes += [repo_scope(s, ("pull",)) for s in sources[:10]]
        try:
            self.session.authorize(scopes)
        except Unauthorized as e:
            raise Unauthorized(str(e)) from None

    # --- blobs --------------------------------------------------------------------
    def _has_blob(self, digest: str) -> bool:
        with self.session.request("HEAD", f"/v2/{self.path}/blobs/{digest}") as r:
            r.read()
            if r.status in (401, 403):
                raise self._denied()
            return r.status == 200

    def _denied(self) -> RegistryError:
        return RegistryError("denied: requested access to the resource is denied")

    def _start_upload(self, query: str = "") -> tuple[int, str]:
        with self.session.request("POST", f"/v2/{self.path}/blobs/uploads/{query}",
                                  {"Content-Length": "0"}, b"") as r:
            body = r.read()
            if r.status in (401, 403):
                raise self._denied()
            if r.status not in (201, 202):
                raise RegistryError(f"starting an upload to {self.ref.name}: status {r.status}: "
                                    f"{error_text(body)}")
            return r.status, self.session.location(r) if r.status == 202 else ""

    def _finish_upload(self, location: str, digest: str, body: bytes = b"") -> None:
        sep = "&" if urllib.parse.urlsplit(location).query else "?"
        url = f"{location}{sep}digest={urllib.parse.quote(digest)}"
        with self.session.request("PUT", url, {"Content-Type": "application/octet-stream",
                                               "Content-Length": str(len(body))}, body) as r:
            data = r.read()
            if r.status != 201:
                raise RegistryError(f"finishing the upload of {digest}: status {r.status}: "
                                    f"{error_text(data)}")
            got = r.headers.get("Docker-Content-Digest")
        if got and got != digest:
            # the registry holds something else under this name (or says so)
            raise RegistryError(f"the registry stored the blob {digest} as {got}")

    def _cancel_upload(self, location: str) -> None:
        try:
            with self.session.request("DELETE", location) as r:
                r.read()
        except RegistryError:
            pass

    def _patch(self, location: str, body: Iterator[bytes], short: str) -> str:
        """Send a layer's bytes in one chunked PATCH; the upload's next location.
        A failure cancels the upload (the registry keeps nothing)."""
        try:
            with self.session.request("PATCH", location,
                                      {"Content-Type": "application/octet-stream"}, body) as r:
                data = r.read()
                if r.status != 202:
                    raise RegistryError(f"uploading layer {short}: status {r.status}: "
                                        f"{error_text(data)}")
                return self.session.location(r)
        except BaseException:
            self._cancel_upload(location)
            raise

    def push_blob_bytes(self, digest: str, data: bytes) -> None:
        """A small blob in one request (monolithic upload)."""
        if self._has_blob(digest):
            return
        _, loc = self._start_upload()
        self._finish_upload(loc, digest, data)

    def push_layer(self, layer: Layer) -> Blob:
        """Make sure the registry has `layer`'s blob; returns it."""
        short = layer.diff_id.split(":", 1)[1][:12]
        with self._lock:
            if layer.diff_id in self._done:
                return self._done[layer.diff_id]
        known = [b for b in self.store.layers.known_blobs(layer.diff_id)
                 if b["media_type"] in REUSABLE]
        domain = self.ref.domain
        found: Blob | None = None
        for b in known:
            if b["registry"] == domain and b["repository"] == self.path and \
                    self._has_blob(b["digest"]):
                found = (b["digest"], b["size"], b["media_type"])
                self.report.status("Layer already exists", short)
                break
        if found is None:
            for b in known:
                if b["registry"] != domain or b["repository"] == self.path:
                    continue
                q = "?" + urllib.parse.urlencode({"mount": b["digest"], "from": b["repository"]})
                status, loc = self._start_upload(q)
                if status == 201:
                    found = (b["digest"], b["size"], b["media_type"])
                    self.report.status(f"Mounted from {b['repository']}", short)
                    break
                self._cancel_upload(loc)
        if found is None:
            for b in known:
                if b["registry"] != domain and self._has_blob(b["digest"]):
                    found = (b["digest"], b["size"], b["media_type"])
                    self.report.status("Layer already exists", short)
                    break
        if found is None:
            kept = self.store.layers.kept_blob(layer.diff_id)
            if kept is not None and kept[1]["media_type"] in REUSABLE:
                found = self._upload_kept(kept[0], kept[1], short)
            if found is None:
                found = self._upload_layer(layer, short)
            self.report.status("Pushed", short)
        self.store.layers.record_blob(layer.diff_id, found[0], found[2], found[1], domain,
                                       self.path)
        with self._lock:
            self._done[layer.diff_id] = found
        return found

    def _upload_kept(self, path: Path, blob: dict[str, Any], short: str) -> Blob | None:
        """Upload a kept blob as it is, hashing it as it is read; None (the
        upload cancelled, nothing stored, the file removed) if the file is
        not the blob it is named after any more."""
        digest, size = blob["digest"], blob["size"]
        try:
            f = open(path, "rb", buffering=0)
        except OSError:
            return None
        h = hashlib.sha256()
        sent = 0
        with f:
            have = os.fstat(f.fileno()).st_size
            if size < 0:
                size = have  # a descriptor without its size: the digest decides
            if have != size:
                path.unlink(missing_ok=True)  # not that blob any more: don't read it again
                return None
            _, loc = self._start_upload()

            def body() -> Iterator[bytes]:
                nonlocal sent
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    sent += len(chunk)
                    self.report.progress("Pushing", short, sent, size)
                    yield chunk

            loc = self._patch(loc, body(), short)
        if sent != size or f"sha256:{h.hexdigest()}" != digest:
            self._cancel_upload(loc)  # never finished: the registry keeps nothing
            path.unlink(missing_ok=True)
            return None
        self._finish_upload(loc, digest)
        return digest, size, blob["media_type"]

    def _upload_layer(self, layer: Layer, short: str) -> Blob:
        _, loc = self._start_upload()
        rfd, wfd = os.pipe()
        try:
            fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, CHUNK)  # fewer, bigger reads
        except OSError:
            pass
        result: dict[str, Any] = {}

        def produce() -> None:
            try:
                result["info"] = self.store.layers.write_layer_tar(
                    layer.chain_id, wfd, "gzip", self.opts.compression_level)
            except BaseException as e:  # noqa: BLE001 - handed to the uploading thread
                result["error"] = e
            finally:
                os.close(wfd)

        t = threading.Thread(target=produce, name="dockyard-push-tar", daemon=True)
        t.start()
        sent = 0
        # The blob is kept as it goes up, as a pull keeps it, so that the next
        # push elsewhere sends it as it is (the size bound: the tar's).
        layers = self.store.layers
        keep = layers.push_keep_path(layer.cache_id) if layers.room_to_keep(layer.size) else None
        kept: Any = None
        if keep is not None:
            try:
                kept = open(keep, "wb", buffering=0)
            except OSError:
                keep = None

        def body() -> Iterator[bytes]:
            nonlocal sent, kept
            with open(rfd, "rb", buffering=0, closefd=False) as f:
                while chunk := f.read(CHUNK):
                    sent += len(chunk)
                    if kept is not None:
                        try:
                            kept.write(chunk)
                        except OSError:  # the copy is a cache: no room, no copy
                            kept.close()
                            kept = None
                    self.report.progress("Pushing", short, sent, 0)
                    yield chunk

        try:
            try:
                loc = self._patch(loc, body(), short)
            finally:
                os.close(rfd)  # a producer still writing gets EPIPE and stops
                t.join()
                if kept is not None:
                    try:
                        kept.close()
                    except OSError:
                        pass  # a short copy: keep_blob finds its size wrong
            if "error" in result:
                self._cancel_upload(loc)
                raise result["error"]
            info = result["info"]
            if info.diff_id != layer.diff_id:
                self._cancel_upload(loc)
                raise RegistryError(f"layer {layer.diff_id} could not be reproduced exactly "
                                    f"(got {info.diff_id})")
            self.report.progress("Pushing", short, info.compressed_size, info.compressed_size,
                                 force=True)
            self._finish_upload(loc, info.digest)
            if keep is not None:
                # renamed only if whole (keep_blob checks the size)
                layers.keep_blob(keep, layer.diff_id, info.digest, DOCKER_LAYER,
                                 info.compressed_size, self.ref.domain, self.path)
        finally:
            if keep is not None:
                keep.unlink(missing_ok=True)
        return info.digest, info.compressed_size, DOCKER_LAYER

    # --- one tag ------------------------------------------------------------------
    def push_tag(self, tag: str, image_id: str) -> dict[str, Any]:
        store = self.store
        img = store.images.get(image_id)
        layers = store.layers.chain(img.top_layer)
        for lay in layers:
            self.report.status("Preparing", lay.diff_id.split(":", 1)[1][:12])
        n = max(1, self.opts.max_concurrent_uploads)
        with ThreadPoolExecutor(n, thread_name_prefix="dockyard-push") as pool:
            blobs = list(pool.map(self.push_layer, layers))
        self.push_blob_bytes(image_id, img.raw)
        # A blob reused with an OCI media type (zstd has no Docker one) makes
        # the manifest OCI's, where Docker's gzip is OCI's tar+gzip.
        oci = any(not m.startswith("application/vnd.docker.") for _, _, m in blobs)
        mtype, ctype = (OCI_MANIFEST, OCI_CONFIG) if oci else (DOCKER_MANIFEST, DOCKER_CONFIG)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": mtype,
            "config": {"mediaType": ctype, "size": len(img.raw), "digest": image_id},
            "layers": [{"mediaType": OCI_LAYERS[1] if oci and m == DOCKER_LAYER else m,
                        "size": size, "digest": digest}
                       for digest, size, m in blobs],
        }, indent=3).encode()
        digest = _core.sha256_bytes(manifest)
        with self.session.request("PUT", f"/v2/{self.path}/manifests/{tag}",
                                  {"Content-Type": mtype}, manifest) as r:
            data = r.read()
            if r.status in (401, 403):
                raise self._denied()
            if r.status != 201:
                raise RegistryError(f"pushing the manifest of {self.ref.name}:{tag}: status "
                                    f"{r.status}: {error_text(data)}")
            got = r.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"the registry stored the manifest as {got}, expected {digest}")
        self.report.status(f"{tag}: digest: {digest} size: {len(manifest)}")
        self.report({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest,
                                                   "Size": len(manifest)}})
        store.images.tag(image_id, f"{self.ref.name}@{digest}")
        self.events.emit("image", "push", f"{self.ref.familiar_name}:{tag}",
                         {"name": f"{self.ref.familiar_name}:{tag}"})
        return {"Tag": tag, "Digest": digest, "Size": len(manifest)}


def push(config: TransferConfig, name: str, tag: str | None = None,
         auth: AuthConfig | None = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    ref = reference.parse_normalized(name)
    if ref.digest:
        raise InvalidParameter("cannot push a digest reference")
    if tag:
        ref = ref.with_tag(tag)
    repo = ref.trimmed()
    store = config.store
    if ref.tag:
        row = store.db.one("SELECT image_id FROM refs WHERE ref=?", (str(ref),))
        targets = [(ref.tag, row["image_id"])] if row else []
    else:
        rows = store.db.query("SELECT ref, image_id FROM refs WHERE ref LIKE ? ORDER BY ref",
                              (f"{repo.name}:%",))
        targets = [(r["ref"][len(repo.name) + 1:], r["image_id"]) for r in rows
                   if r["ref"].startswith(f"{repo.name}:") and "@" not in r["ref"]]
    p = Pusher(config, repo, auth, progress)
    p.report.status(f"The push refers to repository [{repo.name}]")
    if not targets:
        raise ImageNotFound(f"An image does not exist locally with the tag: {repo.familiar_name}"
                            if repo.domain == "docker.io" else
                            f"An image does not exist locally with the tag: {repo.name}")
    all_layers = [lay for _, iid in targets
                  for lay in store.layers.chain(store.images.get(iid).top_layer)]
    p.connect(all_layers)
    return [p.push_tag(t, iid) for t, iid in targets]
