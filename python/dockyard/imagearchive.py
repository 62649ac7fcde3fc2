"""`docker save` / `docker load` archives.

Save writes the layout Docker 25+ writes, which older dockerd loads as well:
an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) plus the
docker-archive `manifest.json` that points into the same blobs. Load accepts
that, the legacy docker-archive layout (`<id>/layer.tar`), and a bare OCI
layout without `manifest.json`.

A failed load leaves the store as it was: layers registered by the failing
load are released again.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Iterable

from . import _core, reference
from .errors import InvalidParameter, LayerCorrupt
from .ids import chain_ids
from .mediatypes import DOCKER_LIST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST
from .store.local import LocalStore


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def save(store: LocalStore, names: list[str], out: IO[bytes]) -> None:
    """Write the images named (references or IDs) as one tar stream to `out`."""
    wanted: dict[str, list[str]] = {}  # image id -> refs to record
    for name in names:
        img = store.images.resolve(name)
        tags = wanted.setdefault(img.id, [])
        ref = None
        try:
            ref = reference.parse_docker_ref(name)
        except Exception:
            ref = None
        if ref is not None and str(ref) in img.refs and "@" not in str(ref):
            tags.append(str(ref))
        elif not name.startswith("sha256:") and ref is None:
            pass
        elif ref is None or str(ref) not in img.refs:
            # Saved by ID: no tags, as in Docker.
            pass
    tmp = store.new_tempdir()
    # Big writes: each one may cross a thread boundary to reach the socket.
    buffered = io.BufferedWriter(out, 1 << 20) if not isinstance(out, io.BufferedIOBase) else out
    try:
        with tarfile.open(fileobj=buffered, mode="w|", format=tarfile.PAX_FORMAT,
                          copybufsize=1 << 20) as tar:
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            written: set[str] = set()
            blob_sizes: dict[str, int] = {}
            manifest_json: list[dict[str, Any]] = []
            index: list[dict[str, Any]] = []
            for iid, refs in wanted.items():
                img = store.images.get(iid)
                layer_paths: list[str] = []
                layer_descs: list[dict[str, Any]] = []
                for layer in store.layers.chain(img.top_layer):
                    hexd = layer.diff_id.split(":", 1)[1]
                    path = f"blobs/sha256/{hexd}"
                    layer_paths.append(path)
                    if hexd not in written:
                        f = tmp / hexd
                        info = store.layers.write_layer_tar(layer.chain_id, str(f))
                        if info.diff_id != layer.diff_id:
                            raise LayerCorrupt(
                                f"layer {layer.diff_id} could not be reproduced exactly "
                                f"(got {info.diff_id})")
                        tar.add(str(f), arcname=path, recursive=False)
                        f.unlink()
                        written.add(hexd)
                        blob_sizes[hexd] = info.size
                    # the blob's length (a layer's size counts file contents only)
                    layer_descs.append({"mediaType": OCI_LAYER, "digest": layer.diff_id,
                                        "size": blob_sizes[hexd]})
                chex = iid.split(":", 1)[1]
                if chex not in written:
                    _add_bytes(tar, f"blobs/sha256/{chex}", img.raw)
                    written.add(chex)
                manifest = json.dumps({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": iid, "size": len(img.raw)},
                    "layers": layer_descs,
                }, separators=(",", ":")).encode()
                mdigest = _core.sha256_bytes(manifest)
                mhex = mdigest.split(":", 1)[1]
                if mhex not in written:
                    _add_bytes(tar, f"blobs/sha256/{mhex}", manifest)
                    written.add(mhex)
                desc = {"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(manifest)}
                for r in refs or [None]:
                    d = dict(desc)
                    if r:
                        fam = reference.familiar_string(r)
                        d["annotations"] = {
                            "io.containerd.image.name": r,
                            "org.opencontainers.image.ref.name": fam.rsplit(":", 1)[1],
                        }
                    index.append(d)
                manifest_json.append({
                    "Config": f"blobs/sha256/{chex}",
                    "RepoTags": [reference.familiar_string(r) for r in refs] or None,
                    "Layers": layer_paths,
                })
            _add_bytes(tar, "index.json", json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index},
                separators=(",", ":")).encode())
            _add_bytes(tar, "manifest.json", json.dumps(manifest_json,
                                                        separators=(",", ":")).encode())
            _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        buffered.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _ChunkReader(io.RawIOBase):
    """A file object over an iterable of byte chunks (an HTTP body)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _spool(src: IO[bytes] | Iterable[bytes], dest: Path) -> None:
    """Unpack the outer archive's regular files into `dest` (nothing else)."""
    fobj = src if hasattr(src, "read") else io.BufferedReader(_ChunkReader(src), 1 << 20)
    try:
        with tarfile.open(fileobj=fobj, mode="r|*") as tar:
            for m in tar:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts:
                    raise InvalidParameter(f"invalid path in archive: {m.name}")
                if m.isdir():
                    continue
                if not m.isfile():
                    continue
                out = dest / p
                out.parent.mkdir(parents=True, exist_ok=True)
                f = tar.extractfile(m)
                assert f is not None
                try:
                    with open(out, "wb") as w:
                        shutil.copyfileobj(f, w, 1 << 20)
                except OSError as e:
                    if e.filename is None:  # a write's error: say which file
                        raise OSError(e.errno, e.strerror, str(out)) from None
                    raise
    except tarfile.TarError as e:
        if str(e) == "invalid header":  # dockerd's words, from its untar in a child
            raise InvalidParameter("Error processing tar file(exit status 1): archive/tar: "
                                   "invalid tar header") from None
        raise InvalidParameter(f"invalid archive: {e}") from None


def _inside(root: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise InvalidParameter(f"invalid path in archive: {rel}")
    return root / p


def _oci_images(root: Path) -> list[tuple[bytes, list[Path], list[str]]]:
    index = json.loads((root / "index.json").read_bytes())
    out: list[tuple[bytes, list[Path], list[str]]] = []

    def blob(digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        return _inside(root, f"blobs/{algo}/{hexd}")

    def visit(desc: dict[str, Any], names: list[str]) -> None:
        mt = desc.get("mediaType")
        data = json.loads(blob(desc["digest"]).read_bytes())
        mt = mt or data.get("mediaType")
        if mt in (OCI_INDEX, DOCKER_LIST) or "manifests" in data:
            for m in data.get("manifests", []):
                plat = m.get("platform") or {}
                if plat and (plat.get("os") != "linux" or plat.get("architecture") != "amd64"):
                    continue
                visit(m, names)
                return
            return
        config = blob(data["config"]["digest"]).read_bytes()
        out.append((config, [blob(layer["digest"]) for layer in data["layers"]], names))

    for desc in index.get("manifests", []):
        ann = desc.get("annotations") or {}
        name = ann.get("io.containerd.image.name")
        if not name and ann.get("org.opencontainers.image.ref.name"):
            name = ann["org.opencontainers.image.ref.name"]
        visit(desc, [name] if name else [])
    return out


def load(store: LocalStore, src: IO[bytes] | Iterable[bytes],
         progress: Callable[[dict[str, Any]], None] | None = None) -> list[str]:
    """Load every image of a docker-archive or OCI layout; returns what was loaded."""
    tmp = store.new_tempdir()
    registered: list[str] = []
    loaded: list[str] = []
    try:
        _spool(src, tmp)
        if (tmp / "manifest.json").exists():
            entries = json.loads((tmp / "manifest.json").read_bytes())
            images = [((_inside(tmp, e["Config"])).read_bytes(),
                       [_inside(tmp, lp) for lp in e.get("Layers") or []],
                       e.get("RepoTags") or []) for e in entries]
        elif (tmp / "index.json").exists():
            images = _oci_images(tmp)
        else:
            raise InvalidParameter(
                "open /var/lib/dockyard/tmp/manifest.json: no such file or directory")
        for raw_config, layer_files, tags in images:
            config = json.loads(raw_config)
            diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
            if len(diff_ids) != len(layer_files):
                raise InvalidParameter("invalid manifest, layers length mismatch: expected "
                                       f"{len(diff_ids)}, got {len(layer_files)}")
            chains = chain_ids(diff_ids)
            parent = None
            for i, (path, want) in enumerate(zip(layer_files, diff_ids)):
                if store.layers.find(chains[i]) is None:
                    if progress:
                        progress({"status": "Loading layer", "id": want.split(":")[1][:12]})
                    layer = store.layers.register(
                        parent, lambda t, w, s, p=str(path): _core.extract_layer_file(p, t, w, s))
                    if layer.diff_id != want:
                        store.layers.release(layer.chain_id)
                        raise LayerCorrupt(f"invalid diffID for layer {i}: calculated "
                                           f"{layer.diff_id}, expected {want}")
                    registered.append(layer.chain_id)
                parent = chains[i]
            refs = [str(reference.parse_docker_ref(t)) for t in tags]
            olds: dict[str, str | None] = {}
            for ref in refs:
                old = store.db.one("SELECT image_id FROM refs WHERE ref=?", (ref,))
                olds.setdefault(ref, old["image_id"] if old else None)
            # the image and its tags in one transaction
            img = store.images.create(raw_config, refs=refs)
            registered.clear()
            for ref in refs:
                old_id, olds[ref] = olds[ref], img.id
                if old_id and old_id != img.id:
                    msg = (f"The image {reference.familiar_string(ref)} already exists, "
                           "renaming the old one with ID "
                           f"{old_id} to empty string\n")
                    if progress:
                        progress({"stream": msg})
                line = f"Loaded image: {reference.familiar_string(ref)}\n"
                loaded.append(line)
                if progress:
                    progress({"stream": line})
            if not tags:
                line = f"Loaded image ID: {img.id}\n"
                loaded.append(line)
                if progress:
                    progress({"stream": line})
        return loaded
    except BaseException:
        for chain_id in reversed(registered):
            store.layers.release(chain_id)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["save", "load"]
