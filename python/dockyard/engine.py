"""`dockyard.Engine`: the typed Python API over the engine, the same object the
daemon serves over HTTP. Everything here blocks; the daemon calls it from
worker threads, and the Rust core releases the GIL while it works.

    >>> from dockyard import Engine
    >>> eng = Engine("/var/lib/dockyard")
    >>> img = eng.import_image("rootfs.tar", repo="busybox", tag="latest")
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable

from . import _core, reference
from .changes import apply_changes
from .containers.service import ContainerService
from .distribution import RegistryOptions
from .distribution.auth import AuthConfig
from .distribution.progress import Progress
from .distribution.transfer import Inflight, TransferConfig
from .errors import InvalidParameter, NotFound, StorageDriverError
from .events import EventLog
from .filters import image_matches
from .graphdriver import select_driver
from .idmap import IDMap
from .imageconfig import container_config, encode, imported_config, parse_time
from .network.service import NetworkOptions, NetworkService
from .volumes.service import VolumeService
from .store.blobs import BlobStore
from .store.db import Database
from .store.images import Image, ImageStore
from .store.layers import LayerStore
from .store.local import LocalStore

if TYPE_CHECKING:
    from .build.service import BuildService
    from .pods.service import PodService


class Engine:
    def __init__(self, root: str | os.PathLike = "/var/lib/dockyard",
                 storage_driver: str | None = None,
                 storage_opts: dict[str, str] | None = None,
                 exec_root: str | os.PathLike = "/var/run/dockyard",
                 default_ulimits: list[dict[str, Any]] | None = None,
                 registry_options: RegistryOptions | None = None,
                 exec_driver: str = "native",
                 network_options: NetworkOptions | None = None,
                 log_config: dict[str, Any] | None = None,
                 idmap: IDMap | None = None) -> None:
        self.registry_options = registry_options or RegistryOptions()
        #: --userns-remap's maps: containers' root is idmap.root on the host.
        self.idmap = idmap
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.tmp = self.root / "tmp"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(mode=0o700)
        self.db = Database(self.root / "dockyard.db")
        self.driver = select_driver(self.root, storage_driver, storage_opts or {}, idmap)
        self.events = EventLog()
        self.blobs = BlobStore(self.root)
        self.layers = LayerStore(self.db, self.driver, self.root, idmap)
        self.images = ImageStore(self.db, self.layers)
        # The services get what they work with, not the engine: this is the one
        # place that wires them.
        self.store = LocalStore(self.db, self.driver, self.layers, self.images, self.tmp)
        self.networks = NetworkService(self.db, self.events, Path(exec_root), network_options)
        self.networks.container_name = self._container_name
        self.volumes = VolumeService(self.db, self.events, self.root,
                                     idmap.root if idmap else None)
        self.containers = ContainerService(self.store, self.events, self.root, exec_root,
                                           default_ulimits=default_ulimits,
                                           exec_driver=exec_driver, network=self.networks,
                                           volumes=self.volumes, log_config=log_config,
                                           idmap=idmap)
        self.driver.unmount_stale({c.id for c in self.containers.all()
                                   if c.state.get("Running") or c.state.get("Prepared")})
        self.layers.gc(keep=self._container_layer_ids())
        self.volumes.drop_stale_refs({c.id for c in self.containers.all()})
        self._lock = threading.RLock()
        self._builds: BuildService | None = None
        self._pods: PodService | None = None
        self.exec_root = Path(exec_root)
        # What a daemon killed mid-build left: its context directories and the
        # RUN containers of its steps.
        from .build.inflight import sweep, sweep_dirs

        sweep_dirs(self.root / "builder")
        sweep(self.db, self.containers)
        self.inflight_layers = Inflight()
        self._transfers = TransferConfig(self.registry_options, self.store, self.events,
                                         self.inflight_layers)

    def close(self) -> None:
        self.containers.close()
        self.networks.close()
        self.driver.cleanup()
        self.db.close()

    # --- networks -----------------------------------------------------------
    def _container_name(self, cid: str) -> str:
        try:
            return self.containers.get(cid).name
        except NotFound:
            return ""

    def inspect_network(self, ref: str) -> dict[str, Any]:
        def name(cid: str) -> str:
            try:
                return self.containers.get(cid).name.lstrip("/")
            except NotFound:
                return ""
        return self.networks.inspect(ref, name)

    def connect_network(self, network: str, container: str,
                        endpoint_config: dict[str, Any] | None = None) -> None:
        c = self.containers.get(container)
        with self.containers.lock(c.id):
            c = self.containers.get(c.id)
            self.networks.connect(network, c.id, c.name, endpoint_config,
                                  c.hostconfig, bool(c.state.get("Running")))

    def disconnect_network(self, network: str, container: str, force: bool = False) -> None:
        c = self.containers.get(container)
        with self.containers.lock(c.id):
            self.networks.disconnect(network, c.id, force, c.hostconfig)

    # --- images -------------------------------------------------------------
    def get_image(self, name: str) -> Image:
        return self.images.resolve(name)

    def list_images(self, all: bool = False, filters: dict[str, list[str]] | None = None
                    ) -> list[Image]:
        imgs = self.images.all()
        if not all:
            # Intermediate images (untagged parents of other images) are hidden.
            parents = {i.parent for i in imgs if i.parent}
            imgs = [i for i in imgs if i.refs or i.id not in parents]
        if filters:
            by_id = {i.id: i for i in self.images.all()}
            imgs = [i for i in imgs if image_matches(i, filters, by_id, self.images)]
        imgs.sort(key=lambda i: (i.created_unix, i.id), reverse=True)
        return imgs

    def tag_image(self, name: str, repo: str, tag: str | None = None) -> None:
        img = self.images.resolve(name)
        ref = reference.parse_normalized(repo if not tag else f"{repo}:{tag}")
        if ref.digest:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        _not_scratch(ref)
        self.images.tag(img.id, str(ref.with_default_tag()))
        self.events.emit("image", "tag", img.id,
                         {"name": reference.familiar_string(ref.with_default_tag())})

    def remove_image(self, name: str, force: bool = False, prune: bool = True
                     ) -> list[dict[str, str]]:
        with self._lock:
            iid = self.images.resolve(name).id
            out = self.images.delete(name, force=force, prune=prune, users=self._image_users())
        for item in out:
            for action, what in item.items():
                if action == "Untagged":
                    self.events.emit("image", "untag", iid, {"name": iid})
                else:
                    self.events.emit("image", "delete", what, {"name": what})
        return out

    def _image_users(self) -> dict[str, list[tuple[str, bool]]]:
        return self.containers.image_users()

    def _container_layer_ids(self) -> set[str]:
        ids = {c.id for c in self.containers.all()}
        pods = getattr(self, "_pods", None)  # None while __init__ runs
        reserved = pods.reserved() if pods is not None else set()
        return ids | {f"{i}-init" for i in ids} | reserved

    def check(self, verify: bool = True, repair: bool = False,
              grace: float | None = None) -> list[dict[str, Any]]:
        """`dockyard system check`: the store (see store.check), every
        container's layers and supervisor against its record, every volume's
        directory. Read-only unless `repair` (only what belongs to nothing is
        removed; a container recorded running whose supervisor is gone is
        reconciled, as a restart would)."""
        from .graphdriver.base import drain_removals
        from .store.check import IN_PROGRESS_GRACE, Problem, check_store

        grace = IN_PROGRESS_GRACE if grace is None else grace
        drain_removals()  # what an --rm exit left to the background goes first
        problems = check_store(self.store, self._container_layer_ids(), verify, repair, grace)
        for c in self.containers.all():
            for lid in (c.id, f"{c.id}-init"):
                if not self.driver.exists(lid):
                    problems.append(Problem("container", c.id, f"its layer {lid} is missing"))
            if c.state.get("Running") and not self.containers.shim_alive(c):
                p = Problem("container", c.id,
                            "recorded running, but its supervisor is gone", True)
                if repair:
                    self.containers.reconcile(c.id)
                    p.repaired = True
                problems.append(p)
        for r in self.db.query("SELECT name FROM volumes"):
            if not self.volumes.path(r["name"]).is_dir():
                problems.append(Problem("volume", r["name"], "its _data directory is missing"))
        problems += [Problem("container", i, what, fix, done) for i, what, fix, done in
                     self.containers.check_runtime(repair, grace)]
        running = {c.id for c in self.containers.all() if c.state.get("Running")}
        existing = {c.id for c in self.containers.all()}
        problems += [Problem("network", i, what, fix, done) for i, what, fix, done in
                     self.networks.check(running, existing, repair, grace)]
        return [p.as_json() for p in problems]

    def image_size(self, img: Image) -> int:
        return self.images.size(img)

    def history(self, name: str) -> list[dict[str, Any]]:
        img = self.images.resolve(name)
        layers = self.layers.chain(img.top_layer)
        hist = img.config.get("history") or []
        if not hist:
            hist = [{"created": img.config.get("created", "")} for _ in layers] or [
                {"created": img.config.get("created", "")}]
        out: list[dict[str, Any]] = []
        li = 0
        for h in hist:
            size = 0
            if not h.get("empty_layer") and li < len(layers):
                size = layers[li].size
                li += 1
            out.append({
                "Comment": h.get("comment", ""),
                "Created": int(parse_time(h.get("created", ""))),
                "CreatedBy": h.get("created_by", ""),
                "Id": "<missing>",
                "Size": size,
                "Tags": None,
            })
        out.reverse()
        # Walk the parent chain so that local ancestors show their IDs and tags.
        cur: Image | None = img
        idx = 0
        while cur is not None and idx < len(out):
            out[idx]["Id"] = cur.id
            out[idx]["Tags"] = cur.repo_tags or None
            n = len(cur.config.get("history") or []) or 1
            parent_n = 0
            nxt = None
            if cur.parent:
                try:
                    nxt = self.images.get(cur.parent)
                    parent_n = len(nxt.config.get("history") or []) or 1
                except NotFound:
                    nxt = None
            idx += max(n - parent_n, 1)
            cur = nxt
        return out

    # --- import -------------------------------------------------------------
    def import_image(self, src: str | os.PathLike | Iterable[bytes] | IO[bytes],
                     repo: str | None = None, tag: str | None = None, message: str = "",
                     changes: list[str] | None = None, platform: str | None = None,
                     source_name: str = "-") -> Image:
        """`docker import`: one layer from a tarball (plain, gzip or zstd)."""
        ref = None
        if repo:
            ref = reference.parse_normalized(f"{repo}:{tag}" if tag else repo)
            if ref.digest:
                raise InvalidParameter("cannot import digest reference")
            _not_scratch(ref)
            ref = ref.with_default_tag()
        cfg: dict[str, Any] = container_config()
        if changes:
            apply_changes(cfg, changes)
        arch, os_name = "amd64", "linux"
        if platform:
            parts = platform.split("/")
            os_name = parts[0] or "linux"
            if len(parts) > 1:
                arch = parts[1]

        def extract(target: str, whiteouts: str, split: str):
            if isinstance(src, (str, os.PathLike)):
                return _core.extract_layer_file(str(src), target, whiteouts, split)
            unpacker = _core.LayerUnpacker(target, whiteouts, split)
            try:
                chunks = iter(src.read, b"") if hasattr(src, "read") else src
                for chunk in chunks:
                    unpacker.write(chunk)
            except BaseException:
                unpacker.abort()
                raise
            return unpacker.finish()

        layer = self.layers.register(None, extract)
        comment = message or f"Imported from {source_name}"
        config = imported_config(layer.diff_id, comment, cfg, arch, os_name)
        img = self.images.create(encode(config), refs=[str(ref)] if ref is not None else [])
        self.events.emit("image", "import", img.id)
        if ref is not None:
            self.events.emit("image", "tag", img.id, {"name": reference.familiar_string(ref)})
        return img

    # --- save / load --------------------------------------------------------
    # The modules doing the work of save, load, pull, push, login and search
    # (the registry client, tarfile) are imported on first use: the daemon and
    # `import dockyard.engine` start without them.
    def save(self, names: list[str], out: IO[bytes]) -> None:
        from .imagearchive import save

        save(self.store, names, out)

    def load(self, src: IO[bytes] | Iterable[bytes], progress: Progress | None = None
             ) -> list[str]:
        from .imagearchive import load

        return load(self.store, src, progress)

    # --- registries -----------------------------------------------------------
    def pull(self, name: str, tag: str | None = None, auth: AuthConfig | None = None,
             progress: Progress | None = None, platform: str | None = None,
             all_tags: bool = False) -> list[Image]:
        """`docker pull`: `tag` may be a digest; returns the images pulled."""
        from .distribution.pull import pull

        return pull(self._transfers, name, tag, auth, progress, platform, all_tags)

    def push(self, name: str, tag: str | None = None, auth: AuthConfig | None = None,
             progress: Progress | None = None) -> list[dict[str, Any]]:
        """`docker push`: every tag of the repository when `tag` is None;
        returns [{"Tag", "Digest", "Size"}] per tag pushed."""
        from .distribution.push import push

        return push(self._transfers, name, tag, auth, progress)

    def login(self, auth: AuthConfig) -> dict[str, str]:
        """Check credentials against the registry (`docker login`)."""
        from .distribution.login import login

        return login(self.registry_options, auth)

    def search(self, term: str, limit: int = 25, filters: dict[str, list[str]] | None = None,
               auth: AuthConfig | None = None) -> list[dict[str, Any]]:
        from .distribution.search import search

        return search(self.registry_options, term, limit, filters or {}, auth)

    # --- build ----------------------------------------------------------------
    @property
    def builds(self) -> "BuildService":
        """The classic builder (`POST /build`), made on first use."""
        with self._lock:
            if self._builds is None:
                from .build.service import BuildService

                self._builds = BuildService(self.store, self.containers, self.events,
                                            self.root, self._pull_for_build)
            return self._builds

    @property
    def pods(self) -> "PodService":
        """Pods for the CRI (made on first use: a daemon without --cri has none)."""
        with self._lock:
            if self._pods is None:
                from .pods.service import PodService

                self._pods = PodService(self.db, self.containers, self.root, self.exec_root)
            return self._pods

    def _pull_for_build(self, name: str, progress: Progress, platform: str | None,
                        auths: dict[str, AuthConfig]) -> Image:
        """FROM (or COPY --from) of an image not stored: pull it, as dockerd
        does, with the build request's credentials for its registry."""
        domain = reference.parse_normalized(name).domain
        hub = domain in ("docker.io", "index.docker.io", "registry-1.docker.io")
        auth = None
        for key, cfg in auths.items():
            host = key.split("://", 1)[-1].split("/", 1)[0]
            if host == domain or (hub and host in ("index.docker.io", "docker.io",
                                                   "registry-1.docker.io")):
                auth = cfg
                break
        self.pull(name, None, auth, progress, platform)
        return self.images.resolve(name)

    # --- prune / df ---------------------------------------------------------
    def prune_images(self, dangling_only: bool = True,
                     filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        with self._lock:
            users = self._image_users()
            before = self.layers.total_size()
            for img in self.images.all():
                if users.get(img.id):
                    continue
                if dangling_only and img.refs:
                    continue
                if self.images.children(img.id):
                    continue
                if filters and not image_matches(img, filters, {}, self.images):
                    continue
                try:
                    for r in list(img.refs):
                        self.images.untag(r)
                        deleted.append({"Untagged": reference.familiar_string(r)})
                    deleted.extend(self.images.delete_chain(img.id, True, users))
                except NotFound:
                    continue
            reclaimed = before - self.layers.total_size()
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def daemon_id(self) -> str:
        """A stable engine ID in dockerd's shape (12 groups of 4 base32 chars)."""
        ident = self.db.get_meta("engine_id")
        if ident is None:
            raw = base64.b32encode(os.urandom(30)).decode()[:48]
            ident = ":".join(raw[i:i + 4] for i in range(0, 48, 4))
            self.db.set_meta("engine_id", ident)
        return ident

    def new_tempdir(self) -> Path:
        return self.store.new_tempdir()

    def storage_status(self) -> list[tuple[str, str]]:
        return list(self.driver.status())


def _not_scratch(ref: reference.Reference) -> None:
    """`scratch` names the empty base image in Dockerfiles; no image may take it."""
    if ref.name == "docker.io/library/scratch":
        raise InvalidParameter("'scratch' is a reserved name")


__all__ = ["Engine", "StorageDriverError", "json"]
