"""`docker pull`: fetch a manifest (choosing a platform from a list), its
config and its layers, and register the image.

Layers stream from the registry straight into the Rust extractor: download,
digest check, decompression and extraction overlap, with no temporary
tarball. On overlay (whiteouts as device files, no need for the parent's
files) every missing layer downloads and extracts at once into a directory
prepared on its parent's; on vfs/btrfs (a layer starts as a copy of its
parent) they go one after another. Each layer is committed, bottom up, once
its digest and diff ID check out, so an interrupted pull keeps the layers it
finished and the next pull reuses them. A compressed blob is also kept as it
streams past (written by the extractor from the same chunks, see
`store.layers`), for a later push to send as it is.

Two pulls in one engine that need the same layer fetch it once: the first
claims it in `transfer.Inflight`, the other waits for that claim to be
committed.
"""

from __future__ import annotations

import errno
import http.client
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .. import _core, reference
from ..errors import (BlobCorrupt, InvalidParameter, LayerCorrupt, RegistryError,
                      RegistryNotFound, Unauthorized)
from ..ids import chain_ids
from ..mediatypes import DOCKER_LAYER, OCI_LAYERS
from ..store.images import Image
from .auth import AuthConfig, repo_scope
from .client import BadLocation, Response, Session, error_codes, error_text
from .manifest import ACCEPT, Descriptor, Manifest, is_digest, parse, parse_platform, select
from .progress import ClientGone, Progress, Reporter
from .transfer import Inflight, Slot, TransferConfig

MAX_CONFIG = 8 << 20
MAX_MANIFEST = 4 << 20
CHUNK = 1 << 20
#: Layers whose blob is kept for push: compressed and distributable.
KEPT_TYPES = (DOCKER_LAYER, OCI_LAYERS[1], OCI_LAYERS[2])


class PullCancelled(Exception):
    """The client went away or the pull was stopped: keep what completed."""


#: The deepest layer chain dockerd's layer store takes (layer.maxLayerDepth).
MAX_LAYERS = 125


def _pull_denied(ref: reference.Reference) -> RegistryNotFound:
    return RegistryNotFound(
        f"pull access denied for {ref.familiar_name}, repository does not exist or may "
        "require 'docker login': denied: requested access to the resource is denied")


class Puller:
    def __init__(self, config: TransferConfig, ref: reference.Reference,
                 auth: AuthConfig | None, progress: Progress | None,
                 platform: str | None = None) -> None:
        self.store = config.store
        self.events = config.events
        self.inflight = config.inflight
        self.ref = ref
        self.opts = config.options
        self.session = Session(ref.domain, self.opts, auth or AuthConfig())
        self.report = Reporter(progress)
        self.want = parse_platform(platform)
        self.platform_given = bool(platform)
        self.aborted = threading.Event()

    # --- registry requests ------------------------------------------------------
    def connect(self) -> None:
        try:
            self.session.authorize([repo_scope(self.ref.path, ("pull",))])
        except Unauthorized as e:
            raise Unauthorized(str(e)) from None

    def _get_manifest(self, tag_or_digest: str, shown: str) -> tuple[Manifest, str]:
        path = f"/v2/{self.ref.path}/manifests/{tag_or_digest}"
        with self.session.request("GET", path, {"Accept": ACCEPT}) as r:
            declared = r.headers.get("Content-Length", "")
            if r.status == 200 and declared.isdigit() and int(declared) > MAX_MANIFEST:
                raise RegistryError(f"manifest for {shown} is too large ({declared} bytes, "
                                    f"at most {MAX_MANIFEST >> 20} MiB)")
            body = r.read(MAX_MANIFEST + 1)
            if r.status == 404:
                codes = error_codes(body)
                if "NAME_UNKNOWN" in codes:
                    raise _pull_denied(self.ref)
                raise RegistryNotFound(f"manifest for {shown} not found: "
                                       f"{error_text(body) or 'manifest unknown'}")
            if r.status == 401 and self.session.auth.credentials():
                raise Unauthorized(f'Get "{r.url}": unauthorized: '
                                   f"{error_text(body) or 'authentication required'}")
            if r.status in (401, 403):
                raise _pull_denied(self.ref)
            if r.status != 200:
                raise RegistryError(f"error fetching manifest for {shown}: status {r.status}: "
                                    f"{error_text(body)}")
            if len(body) > MAX_MANIFEST:
                raise RegistryError(f"manifest for {shown} is too large (more than "
                                    f"{MAX_MANIFEST >> 20} MiB)")
            ctype = r.headers.get("Content-Type", "")
        digest = _core.sha256_bytes(body)
        if tag_or_digest.startswith("sha256:") and digest != tag_or_digest:
            raise BlobCorrupt(f"manifest verification failed for digest {tag_or_digest}")
        return parse(body, ctype), digest

    def _get_blob_bytes(self, desc: Descriptor, limit: int) -> bytes:
        with self.session.request("GET", f"/v2/{self.ref.path}/blobs/{desc.digest}") as r:
            body = r.read(limit + 1)
            if r.status != 200:
                raise RegistryError(f"error fetching blob {desc.digest}: status {r.status}: "
                                    f"{error_text(body)}")
        if len(body) > limit:
            raise RegistryError(f"blob {desc.digest} is too large for a config")
        if _core.sha256_bytes(body) != desc.digest:
            raise BlobCorrupt(f"image config verification failed for digest {desc.digest}")
        return body

    def tags(self) -> list[str]:
        with self.session.request("GET", f"/v2/{self.ref.path}/tags/list") as r:
            body = r.read()
            if r.status in (401, 403, 404):
                raise _pull_denied(self.ref)
            if r.status != 200:
                raise RegistryError(f"error listing tags of {self.ref.familiar_name}: "
                                    f"{error_text(body)}")
        try:
            return sorted(json.loads(body).get("tags") or [])
        except (ValueError, AttributeError):
            raise RegistryError("invalid tag list from registry") from None

    # --- one image ----------------------------------------------------------------
    def pull(self, tag_or_digest: str) -> Image:
        """Pull one tag or digest of `self.ref`'s repository."""
        by_digest = tag_or_digest.startswith("sha256:")
        target = (self.ref.trimmed().with_digest(tag_or_digest) if by_digest
                  else self.ref.trimmed().with_tag(tag_or_digest))
        shown = target.familiar()
        top, top_digest = self._get_manifest(tag_or_digest, shown)
        manifest = top
        if top.is_list:
            d = select(top, self.want)
            manifest, _ = self._get_manifest(d.digest, shown)
            if manifest.is_list:
                raise RegistryError(f"{shown}: a manifest list inside a manifest list")
        self.report.status(f"Pulling from {self.ref.path}", tag_or_digest)
        assert manifest.config is not None
        if len(manifest.layers) > MAX_LAYERS:
            # dockerd's layer store refuses a chain deeper than this (and so
            # does overlay's mount options' length, well before 500)
            raise RegistryError("max depth exceeded")
        raw_config = self._get_blob_bytes(manifest.config, MAX_CONFIG)
        try:
            config = json.loads(raw_config)
            if not isinstance(config, dict):
                raise ValueError("not a JSON object")
            diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
            if not isinstance(diff_ids, list) or not all(is_digest(d) for d in diff_ids):
                raise ValueError("rootfs.diff_ids is not a list of digests")
        except (ValueError, TypeError, AttributeError) as e:
            raise RegistryError(f"{shown}: invalid image config: {e}") from None
        if len(diff_ids) != len(manifest.layers):
            raise RegistryError(f"{shown}: the manifest has {len(manifest.layers)} layers but "
                                f"the config names {len(diff_ids)}")
        images = self.store.images
        before = self._current(target)
        image_id = _core.sha256_bytes(raw_config)
        if not self._have(image_id):
            self._fetch_layers(manifest.layers, diff_ids)
        digest_ref = f"{target.name}@{top_digest}"
        img = images.create(raw_config, refs=[digest_ref] + ([] if by_digest else [str(target)]))
        self.store.layers.record_blobs([
            (diff_id, desc.digest, desc.media_type, desc.size, self.ref.domain, self.ref.path)
            for desc, diff_id in zip(manifest.layers, diff_ids)])
        self.report.status(f"Digest: {top_digest}")
        if before == img.id:
            self.report.status(f"Status: Image is up to date for {shown}")
        else:
            self.report.status(f"Status: Downloaded newer image for {shown}")
        self.events.emit("image", "pull", target.familiar(), {"name": target.familiar()})
        return images.get(img.id)

    def _current(self, ref: reference.Reference) -> str | None:
        row = self.store.db.one("SELECT image_id FROM refs WHERE ref=?", (str(ref),))
        return row["image_id"] if row else None

    def _have(self, image_id: str) -> bool:
        return self.store.db.one("SELECT 1 FROM images WHERE id=?", (image_id,)) is not None

    # --- layers -------------------------------------------------------------------
    def _fetch_layers(self, descs: tuple[Descriptor, ...], diff_ids: list[str]) -> None:
        layers = self.store.layers
        inflight: Inflight = self.inflight
        parallel = self.store.driver.whiteouts == "overlay"
        chains = chain_ids(diff_ids)
        plan: list[tuple[str, Any]] = []
        mine: list[Slot] = []
        with inflight.lock:
            parent_cache: str | None = None
            for chain in chains:
                have = layers.find(chain)
                if have is not None:
                    plan.append(("exists", have))
                    parent_cache = have.cache_id
                    continue
                slot = inflight.slots.get(chain)
                if slot is not None:
                    plan.append(("wait", slot))
                    parent_cache = slot.cache_id
                    continue
                slot = Slot(chain, None, parent_cache)
                if parallel:
                    try:
                        slot.cache_id = layers.prepare(parent_cache)
                    except BaseException as e:
                        self._release_claims(mine, e)
                        raise
                inflight.slots[chain] = slot
                mine.append(slot)
                plan.append(("mine", slot))
                parent_cache = slot.cache_id
        for (kind, _), desc in zip(plan, descs):
            self.report.status({"exists": "Already exists", "wait": "Waiting",
                                "mine": "Pulling fs layer"}[kind], desc.short)

        pool = ThreadPoolExecutor(max(1, self.opts.max_concurrent_downloads),
                                  thread_name_prefix="dockyard-pull") if parallel else None
        futures: dict[int, Future] = {}
        if pool is not None:
            # Biggest first: with a bounded pool, a big layer queued last is the tail.
            order = sorted((i for i, (kind, _) in enumerate(plan) if kind == "mine"),
                           key=lambda i: -descs[i].size)
            for i in order:
                futures[i] = pool.submit(self._download, descs[i], diff_ids[i], plan[i][1])
        committed: list[str] = []
        parent: str | None = None
        try:
            for i, (kind, x) in enumerate(plan):
                if kind == "exists":
                    parent = x.chain_id
                    continue
                if kind == "wait":
                    slot = self._wait_or_take_over(x, parent, descs[i])
                    if slot is None:
                        parent = x.chain_id
                        continue
                    mine.append(slot)
                    info = self._download(descs[i], diff_ids[i], slot)
                elif pool is not None:
                    slot = x
                    info = futures[i].result()
                else:
                    slot = x
                    pc = layers.get(parent).cache_id if parent else None
                    slot.cache_id = layers.prepare(pc)
                    info = self._download(descs[i], diff_ids[i], slot)
                assert slot.cache_id is not None
                actual = layers.get(parent).cache_id if parent else None
                if pool is not None and actual != slot.parent_cache:
                    # The parent we were prepared on is not the stored one: it lost
                    # a race to be registered (a load or import of the same layer)
                    # or its pull was interrupted and we fetched it again.
                    self.store.driver.reparent(slot.cache_id, actual)
                layer = layers.commit(parent, slot.cache_id, info.diff_id, info.size)
                committed.append(layer.chain_id)
                layers.keep_blob(layers.keep_path(slot.cache_id), info.diff_id, descs[i].digest,
                                 descs[i].media_type, info.compressed_size, self.ref.domain,
                                 self.ref.path)
                with inflight.lock:
                    inflight.slots.pop(slot.chain_id, None)
                slot.done.set()
                self.report.status("Pull complete", descs[i].short)
                parent = layer.chain_id
        except BaseException as e:
            self.aborted.set()
            if pool is not None:
                for f in futures.values():
                    f.cancel()
                pool.shutdown(wait=True)
                pool = None
            self._release_claims([s for s in mine if not s.done.is_set()], e)
            if not _interrupted(e):
                self._release_committed(committed)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _wait_or_take_over(self, other: Slot, parent: str | None, desc: Descriptor
                           ) -> Slot | None:
        """Wait for a layer another pull is fetching. None once it is stored; a
        new claim of ours (prepared, to be fetched here) if that pull was
        interrupted, so one client's Ctrl-C doesn't fail another's pull."""
        layers = self.store.layers
        inflight: Inflight = self.inflight
        while True:
            while not other.done.wait(0.2):
                if self.aborted.is_set():
                    raise PullCancelled("pull cancelled")
            if other.error is not None and not _interrupted(other.error):
                raise RegistryError(f"layer {desc.short} failed in a concurrent pull: "
                                    f"{other.error}")
            with inflight.lock:
                if layers.find(other.chain_id) is not None:
                    return None
                again = inflight.slots.get(other.chain_id)
                if again is not None and again is not other:
                    other = again  # another waiter took it over: wait for that one
                    continue
                pc = layers.get(parent).cache_id if parent else None
                slot = Slot(other.chain_id, layers.prepare(pc), pc)
                inflight.slots[other.chain_id] = slot
                return slot

    def _release_claims(self, slots: list[Slot], e: BaseException) -> None:
        inflight: Inflight = self.inflight
        for slot in reversed(slots):
            if slot.cache_id is not None:
                try:
                    self.store.layers.discard(slot.cache_id)
                except Exception:  # noqa: BLE001 - best effort; gc() finishes it at start
                    pass
            slot.error = e
            with inflight.lock:
                if inflight.slots.get(slot.chain_id) is slot:
                    del inflight.slots[slot.chain_id]
            slot.done.set()

    def _release_committed(self, committed: list[str]) -> None:
        """A failed (not interrupted) pull leaves the store as it was: drop the
        layers it committed, unless another pull is building on them."""
        inflight: Inflight = self.inflight
        layers = self.store.layers
        with inflight.lock:
            if inflight.slots:
                return
            for chain in reversed(committed):
                layer = layers.find(chain)
                if layer is None:
                    continue
                with self.store.db.transaction() as c:
                    if layers.in_use(c, chain):
                        return
                    c.execute("DELETE FROM layers WHERE chain_id=?", (chain,))
                layers.discard(layer.cache_id)
                layers.drop_blobs(layer.diff_id)

    def _download(self, desc: Descriptor, diff_id: str, slot: Slot) -> "_core.LayerInfo":
        """Stream one blob into its layer directory; verify digest and diff ID."""
        assert slot.cache_id is not None
        driver = self.store.driver
        target = driver.diff_path(slot.cache_id)
        split = str(self.store.layers.split_path(slot.cache_id))
        keep = (str(self.store.layers.keep_path(slot.cache_id))
                if desc.media_type in KEPT_TYPES and self.store.layers.room_to_keep(desc.size)
                else None)
        attempts = max(1, self.opts.retries)
        for attempt in range(1, attempts + 1):
            if self.aborted.is_set():
                raise PullCancelled("pull cancelled")
            unpacker = _core.LayerUnpacker(target, driver.whiteouts, split, keep)
            try:
                info = self._stream(desc, unpacker)
                break
            except _Retryable as e:
                unpacker.abort()
                if attempt == attempts:
                    raise RegistryError(f"failed to download layer {desc.digest}: {e}") from None
                delay = 0.5 * attempt
                self.report.status(f"Retrying in {delay:g} second{'s' if delay != 1 else ''}",
                                   desc.short)
                time.sleep(delay)
            except LayerCorrupt as e:
                unpacker.abort()
                raise BlobCorrupt(f"failed to register layer {desc.digest}: {e}") from None
            except OSError as e:
                unpacker.abort()
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise OSError(e.errno, f"failed to register layer: {e.strerror}") from None
            except BaseException:
                unpacker.abort()
                raise
        if info.digest != desc.digest:
            raise BlobCorrupt(f"filesystem layer verification failed for digest {desc.digest}")
        if info.diff_id != diff_id:
            raise BlobCorrupt(f"layer {desc.digest} has diff ID {info.diff_id}, but the image "
                              f"config says {diff_id}")
        self.report.status("Download complete", desc.short)
        return info

    def _stream(self, desc: Descriptor, unpacker: "_core.LayerUnpacker") -> "_core.LayerInfo":
        try:
            r: Response = self.session.request("GET", f"/v2/{self.ref.path}/blobs/{desc.digest}")
        except BadLocation as e:
            raise RegistryError(f"failed to download layer {desc.digest}: {e}") from None
        except RegistryError as e:
            raise _Retryable(str(e)) from None
        with r:
            if r.status != 200:
                body = r.read(65536)
                if r.status >= 500 or r.status == 429:
                    raise _Retryable(f"status {r.status}: {error_text(body)}")
                raise RegistryError(f"error fetching layer {desc.digest}: status {r.status}: "
                                    f"{error_text(body) or 'unknown'}")
            total = desc.size if desc.size >= 0 else int(r.headers.get("Content-Length") or 0)
            n = 0
            while True:
                # Never past the declared size: a registry streaming on and on
                # is cut off there (one byte more tells it apart from the end).
                want = CHUNK if desc.size < 0 else min(CHUNK, desc.size - n + 1)
                try:
                    # read1: whatever has arrived (up to 1 MiB), not a full chunk
                    chunk = r.raw.read1(want)
                except (http.client.IncompleteRead, OSError) as e:
                    raise _Retryable(_transfer_error(e)) from None
                if not chunk:
                    break
                if desc.size >= 0 and n + len(chunk) > desc.size:
                    raise BlobCorrupt(f"filesystem layer {desc.digest} sent more than the "
                                      f"{desc.size} bytes its descriptor declares")
                if self.aborted.is_set():
                    raise PullCancelled("pull cancelled")
                unpacker.write(chunk)
                n += len(chunk)
                self.report.progress("Downloading", desc.short, n, total)
            if desc.size >= 0 and n != desc.size:
                raise _Retryable(f"unexpected EOF: got {n} of {desc.size} bytes")
        self.report.status("Verifying Checksum", desc.short)
        return unpacker.finish()


class _Retryable(Exception):
    pass


def _transfer_error(e: BaseException) -> str:
    if isinstance(e, http.client.IncompleteRead):
        return f"unexpected EOF: got {len(e.partial)} more bytes, expected {e.expected} more"
    if isinstance(e, TimeoutError):
        return "read timed out (the registry stopped sending)"
    return str(e) or type(e).__name__


def _interrupted(e: BaseException) -> bool:
    return isinstance(e, (PullCancelled, ClientGone, KeyboardInterrupt, ConnectionError,
                          SystemExit))


def pull(config: TransferConfig, name: str, tag: str | None = None,
         auth: AuthConfig | None = None, progress: Progress | None = None,
         platform: str | None = None, all_tags: bool = False) -> list[Image]:
    """Pull `name` (with `tag`, which may be a digest), or every tag of its
    repository. Returns the images pulled."""
    ref = reference.parse_normalized(name)
    if tag:
        ref = ref.with_digest(tag) if ":" in tag else ref.with_tag(tag)
    if all_tags and not ref.is_name_only:
        raise InvalidParameter("tag can't be used with --all-tags/-a")
    if not all_tags:
        ref = ref.with_default_tag()
    p = Puller(config, ref, auth, progress, platform)
    p.connect()
    if all_tags:
        return [p.pull(t) for t in p.tags()]
    return [p.pull(ref.digest or ref.tag or "latest")]
