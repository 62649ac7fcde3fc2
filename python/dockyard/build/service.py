"""Builds as the engine offers them: `prepare()` takes the whole context
(kept and indexed under `<root>/builder/<id>`, the Dockerfile read and parsed, so
every bad-input error comes before any output), `PreparedBuild.run()`
streams the classic builder's output. Build directories are removed when
the build ends and swept when the engine starts (after a crash)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from ..containers.service import ContainerService
from ..errors import DockyardError
from ..events import EventLog
from ..ids import generate_id
from ..store.local import LocalStore
from .cache import BuildCache
from .context import DEFAULT_DOCKERFILE, BuildContext, read_context_dockerfile, receive_context
from .dockerfile import Dockerfile, load
from .executor import BuildOptions, Builder, Puller, check_platform, parse_tag
from .inflight import sweep_dirs
from .output import BuildOutput, StepFailed, Write
from .remote import Download, GitRemote
from .runmounts import prune_cache_mounts

__all__ = ["BuildService", "PreparedBuild"]

log = logging.getLogger("dockyard.build")


class PreparedBuild:
    def __init__(self, svc: "BuildService", workdir: Path, context: Optional[BuildContext],
                 dockerfile: Dockerfile, opts: BuildOptions,
                 out: Optional[BuildOutput] = None) -> None:
        self.svc = svc
        self.workdir = workdir
        #: None for a remote Dockerfile without a context (COPY has nothing to copy from).
        self.context = context
        self.dockerfile = dockerfile
        self.opts = opts
        #: The output already started (a remote download's progress), if any.
        self.out = out
        scratch = workdir / "mounts"
        scratch.mkdir(mode=0o700, exist_ok=True)
        self.builder = Builder(svc.store, svc.containers, svc.events, svc.cache, svc.puller,
                               svc.mounts_root, scratch)

    def run(self, write: Write) -> Optional[str]:
        """Build, writing dockerd's JSON stream; the image ID, or None when
        the build failed (the error is in the stream)."""
        out = self.out or BuildOutput(write, self.opts.quiet)
        builder = self.builder
        if self.opts.build_id:
            self.svc.active[self.opts.build_id] = self
        try:
            return builder.build(self.dockerfile, self.context, self.opts, out)
        except StepFailed as e:
            out.error(e.message, e.code)
        except DockyardError as e:
            out.error(str(e))
        except (ConnectionError, RuntimeError):
            raise  # the client went away: nothing to tell it
        except Exception as e:  # noqa: BLE001 - after output started: in-band
            log.exception("build failed", exc_info=e)
            out.error(f"{type(e).__name__}: {e}" if not isinstance(e, OSError) or not e.strerror
                      else f"{e.strerror}: {e.filename}" if e.filename else e.strerror)
        finally:
            if self.opts.build_id:
                self.svc.active.pop(self.opts.build_id, None)
        return None

    def cancel(self) -> None:
        self.builder.cancel()

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class BuildService:
    def __init__(self, store: LocalStore, containers: ContainerService, events: EventLog,
                 root: Path, puller: Optional[Puller] = None) -> None:
        self.store = store
        self.containers = containers
        self.events = events
        self.puller = puller
        self.cache = BuildCache(store.db)
        #: Running builds by the client's `buildid` (for /build/cancel).
        self.active: dict[str, PreparedBuild] = {}
        self.root = root / "builder"
        self.mounts_root = root / "build-mounts"   # RUN --mount=type=cache, kept
        sweep_dirs(self.root)
        self.root.mkdir(mode=0o700, exist_ok=True)

    def check(self, opts: BuildOptions) -> None:
        """What dockerd refuses before it reads any context: tags, platform."""
        for t in opts.tags:
            parse_tag(t)
        if opts.platform:
            check_platform(opts.platform)

    def prepare(self, body: Iterable[bytes], opts: BuildOptions, dockerfile: str = "",
                remote: "Download | GitRemote | None" = None,
                out: Optional[BuildOutput] = None) -> PreparedBuild:
        """Unpack the context (the uploaded `body`, or a `remote` one) and
        parse the Dockerfile; raises (nothing left behind) for a bad context,
        a missing or bad Dockerfile, a bad target. A download reports its
        progress to `out`, which the build then goes on writing to."""
        self.check(opts)
        workdir = self.root / generate_id()[:16]
        workdir.mkdir(mode=0o700)
        progress = out.send if out is not None else None
        try:
            ctx: Optional[BuildContext] = None
            if isinstance(remote, Download) and remote.dockerfile:
                # dockerd's text/plain remote: the Dockerfile alone, no context,
                # `dockerfile=` unused.
                df = load(b"".join(remote.chunks(progress)), DEFAULT_DOCKERFILE,
                          from_context=False)
            else:
                ctx = receive_context(body, workdir) if remote is None else \
                    remote.context(workdir, progress)
                name, data = read_context_dockerfile(ctx, dockerfile)
                df = load(data, name)
            df.stages_up_to(opts.target)  # an unknown target fails here, before any output
            return PreparedBuild(self, workdir, ctx, df, opts, out)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            if remote is not None:
                remote.close()

    def cancel(self, build_id: str) -> None:
        b = self.active.get(build_id)
        if b is not None:
            b.cancel()

    def prune(self) -> int:
        """The build cache and the RUN --mount caches not in use; bytes freed."""
        return self.cache.prune() + prune_cache_mounts(self.mounts_root)
