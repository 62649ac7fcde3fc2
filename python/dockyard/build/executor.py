"""The classic builder (dockerd 20.10 with DOCKER_BUILDKIT=0): every stage up
to the target, one image per step with its parent link, dockerd's configs,
history and output stream.

Stages that don't read each other (FROM <stage>, COPY --from=<stage|index>,
after meta-ARG expansion: `Dockerfile.stage_deps`) build at the same time in
worker threads (`DOCKYARD_BUILD_JOBS`, default a few; 1 builds one stage
after the other). The client still reads dockerd's sequence in file order:
each stage's messages are held (`StageOutput`) until every earlier stage is
out, the stage at the head streams live, Step numbers are fixed in advance.
A stage whose first instructions repeat an earlier stage's on the same base
waits step by step for that stage, so its cache hits (and so the image IDs
and the `Using cache` lines) are those of a sequential build. A failing stage
reports at its place in the order (the earlier stages finish and print
first); the later ones are stopped, their containers removed. `cachefrom`
builds sequentially (its sources are chosen by the first hit, in order).

Unneeded stages: dockerd 20.10 builds and prints every stage up to the
target, and the docker CLI, docker-compose and docker-py read that stream,
so by default they are built too (the stream is dockerd's), beside the
others, the target's own stages getting the free workers first: they cost
wall time only where they take longer than the target's chain, which must
wait for them to be printed before it. With
`DOCKYARD_BUILD_SKIP_UNUSED_STAGES=1` in the daemon's environment they are
skipped, as BuildKit does: no Step lines and no `aux` ID for them, M of
`Step N/M` counts only the stages built (numbered consecutively), a
duplicate stage name fails before the first stage; the unused build-arg
warning still counts their ARGs as consumed.

Metadata instructions (ENV, LABEL, CMD, ...) derive the next config and
record an image without a container or a layer; RUN runs a container from
the current image and commits its diff; WORKDIR and COPY/ADD write a layer
directly. Each step first asks the cache (`cache.BuildCache`: one indexed
query on the parent image and the step's config).
"""

from __future__ import annotations

import asyncio
import codecs
import copy
import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .. import _core, reference
from ..containers import scopedpath
from ..containers.attach import ERR, EXIT, OUT, START, START_RESULT, ShimConnection
from ..containers.commit import EMPTY_LAYER_DIFF_ID
from ..containers.service import ContainerService
from ..errors import DockyardError, InvalidParameter, NotFound
from ..events import EventLog
from ..ids import generate_id, truncate_id
from ..imageconfig import DOCKER_VERSION, container_config, encode, now_rfc3339
from ..store.images import Image
from ..store.local import LocalStore
from . import copy as copyfiles
from .cache import BuildCache, step_key
from .context import BuildContext
from .inflight import Inflight
from .runmounts import MountError, RunMounts, image_paths_exist
from .dockerfile import (
    AddInstruction, ArgInstruction, BuildArgs, CmdInstruction, CopyInstruction, Dockerfile,
    EntrypointInstruction, EnvInstruction, ExposeInstruction, FromInstruction,
    HealthcheckInstruction, LabelInstruction, MaintainerInstruction, OnbuildInstruction,
    RunInstruction, ShellInstruction, Stage, StopsignalInstruction, UserInstruction,
    VolumeInstruction, WorkdirInstruction, format_go_duration, parse_trigger,
)
from .dockerfile.parser import chomp_heredoc_content, parse_heredoc
from .dockerfile.shell import go_quote
from .output import BuildOutput, StageOutput, StepFailed

__all__ = ["BuildOptions", "Builder", "StepFailed", "check_platform", "parse_tag"]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
HOST_PLATFORM = "linux/amd64"
JOBS_ENV = "DOCKYARD_BUILD_JOBS"
SKIP_UNUSED_ENV = "DOCKYARD_BUILD_SKIP_UNUSED_STAGES"


def default_jobs() -> int:
    """How many stages build at once: `DOCKYARD_BUILD_JOBS`, else one more
    than the cores (a stage waits on I/O and containers), at most 4."""
    try:
        return max(1, int(os.environ.get(JOBS_ENV, "")))
    except ValueError:
        return min(4, (os.cpu_count() or 1) + 1)


def default_skip_unused() -> bool:
    return os.environ.get(SKIP_UNUSED_ENV, "").lower() in ("1", "true", "yes")

#: Pulls an image for FROM: (name, progress callback, platform, the request's
#: registry credentials by registry as X-Registry-Config sends them) -> image.
Puller = Callable[[str, Callable[[dict[str, Any]], None], Optional[str], dict[str, Any]], Image]


@dataclass
class BuildOptions:
    """The `POST /build` options the executor uses."""
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, Optional[str]] = field(default_factory=dict)
    no_cache: bool = False
    remove: bool = True
    force_remove: bool = False
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    pull: bool = False
    platform: str = ""
    cache_from: list[str] = field(default_factory=list)
    #: X-Registry-Config: credentials by registry (address -> AuthConfig) for FROM pulls.
    auth_configs: dict[str, Any] = field(default_factory=dict)
    #: The client's `buildid`, for /build/cancel.
    build_id: str = ""
    #: What every RUN container gets (NetworkMode, ExtraHosts, ShmSize, Memory, ...).
    host_config: dict[str, Any] = field(default_factory=dict)
    #: Stages built at once (1: in file order, one after the other).
    jobs: int = field(default_factory=default_jobs)
    #: Skip the stages the target does not need (BuildKit's way; the stream
    #: then differs from dockerd's, see the module's docstring).
    skip_unused: bool = field(default_factory=default_skip_unused)


@dataclass
class _State:
    """dockerd's dispatchState: the stage's image and run config so far."""
    image_id: str  # "" for scratch until the first step
    run_config: dict[str, Any]
    build_args: BuildArgs
    base: Optional[Image]
    stage_name: str = ""
    maintainer: str = ""
    cmd_set: bool = False
    arch: str = "amd64"
    os: str = "linux"


class Builder:
    """One build over the engine's store and containers."""

    def __init__(self, store: LocalStore, containers: ContainerService, events: EventLog,
                 cache: BuildCache, puller: Optional[Puller] = None,
                 mounts_root: Optional[Path] = None, scratch: Optional[Path] = None) -> None:
        self.store = store
        self.containers = containers
        self.events = events
        self.cache = cache
        self.puller = puller
        #: RUN --mount=type=cache directories (kept across builds), and this
        #: build's own scratch space (bind copies, private caches).
        self.mounts_root = mounts_root or store.tmp / "build-mounts"
        self.scratch = scratch or store.tmp
        self.inflight = Inflight(store.db)
        self.cancelled = threading.Event()
        #: The RUN containers running now (one a stage), which `cancel` kills.
        self.running: set[str] = set()

    def cancel(self) -> None:
        """Stop the build: the running steps' containers are killed, no
        further step starts."""
        self.cancelled.set()
        for cid in list(self.running):
            _kill(self.containers, cid)

    # --- the whole build ----------------------------------------------------------
    def build(self, dockerfile: Dockerfile, context: Optional[BuildContext], opts: BuildOptions,
              out: BuildOutput) -> str:
        """Build and tag; returns the final image ID. Raises StepFailed (or a
        DockyardError) for a failed step, after the failure hygiene."""
        tags = [parse_tag(t) for t in opts.tags]
        dockerfile = dockerfile.with_labels(opts.labels, opts.target)
        stages = dockerfile.stages_up_to(opts.target)
        if opts.skip_unused:
            stages = dockerfile.needed_stages(opts.target, opts.build_args)
        run = _Run(self, dockerfile, context, opts, out)
        image_id = run.all(stages)
        warning = run.build_args.unused_warning()
        if warning:
            out.stream(warning)
        for ref in tags:
            self.store.images.tag(image_id, str(ref))
            self.events.emit("image", "tag", image_id,
                             {"name": reference.familiar_string(ref)})
        if out.quiet:
            out.quiet_result(image_id)
        else:
            out.stream(f"Successfully built {truncate_id(image_id)}\n")
            for ref in tags:
                out.stream(f"Successfully tagged {reference.familiar_string(ref)}\n")
        return image_id


def _kill(containers: ContainerService, cid: str) -> None:
    try:
        containers.kill(cid, "SIGKILL")
    except DockyardError:
        pass


def parse_tag(t: str) -> reference.Reference:
    # dockerd answers a bad tag with a 500 (sanitizeRepoAndTags' plain errors).
    try:
        ref = reference.parse_normalized(t)
    except InvalidParameter as e:
        msg = str(e)
        if "must be lowercase" in msg:
            msg = "invalid reference format: repository name must be lowercase"
        raise DockyardError(msg) from None
    if ref.digest:
        raise DockyardError("build tag cannot contain a digest")
    if ref.name == "docker.io/library/scratch":
        raise InvalidParameter("'scratch' is a reserved name")
    return ref.with_default_tag()


def check_platform(p: str) -> None:
    parts = p.lower().split("/")
    if parts[0] != "linux":
        raise InvalidParameter(f'"{p}": unknown operating system or architecture: '
                               "invalid argument")
    if len(parts) > 1 and parts[1] not in ("amd64", "x86_64"):
        raise InvalidParameter(f"platform {p} is not supported: only {HOST_PLATFORM} "
                               "builds here")


class _Shared:
    """What the stages of one build share, under `cond`."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        #: The stages this build builds (by index).
        self.built: set[int] = set()
        #: The image of each finished stage.
        self.images: dict[int, str] = {}
        #: Steps done by each stage being built (0: its FROM).
        self.progress: dict[int, int] = {}
        self.context_sums: Optional[copyfiles.ContextSums] = None


class _Run:
    """The dispatch loop of one build (dockerd's dispatchDockerfileWithCancellation).
    A stage built beside others gets a copy of its own (`worker`): its output,
    step numbers, build args and cancellation."""

    def __init__(self, b: Builder, df: Dockerfile, context: Optional[BuildContext],
                 opts: BuildOptions,
                 out: BuildOutput) -> None:
        self.b = b
        self.df = df
        self.context = context
        self.opts = opts
        self.out = out
        self.lex = df.lex()
        self.build_args = BuildArgs(opts.build_args)
        self.total = df.total_steps(opts.target)
        self.index = 0
        self.shared = _Shared()
        #: The stage being dispatched (its index in the file).
        self.stage_index = 0
        #: An earlier stage whose first steps this one repeats on the same
        #: base, and how many: each waits for that stage's (to hit its cache).
        self.prefix: Optional[tuple[int, int]] = None
        self._stop = threading.Event()
        #: This stage's RUN container running now.
        self.running: Optional[str] = None
        self._cache_from: Optional[set[str]] = None
        self._cache_sources: Optional[list[Image]] = None

    def print_step(self, text: str) -> None:
        self.index += 1
        self.out.step(f"Step {self.index}/{self.total} : {text}")

    def all(self, stages: list[Stage]) -> str:
        self.shared.built = {s.index for s in stages}
        if self.opts.skip_unused:
            self.total = len(self.df.meta_args) + sum(1 + len(s.commands) for s in stages)
        for meta in self.df.meta_args:
            self.print_step(str(meta))
            meta = meta.expand(lambda w: self.lex.process_word(
                w, self.build_args.get_all_allowed()))
            for a in meta.args:
                self.build_args.add_arg(a.key, a.value)
                self.build_args.add_meta_arg(a.key, a.value)
        if self.opts.skip_unused:
            self.skip_unused()
        last: Optional[_State] = None
        if self.opts.jobs <= 1 or len(stages) < 2 or self.opts.cache_from:
            for stage in stages:
                self.stage_index = stage.index
                last = self.build_stage(stage)
                self.stage_done(stage, last)
                self.end_stage(last)
        else:
            last = self.all_parallel(stages)
        if last is None or not last.image_id:
            raise StepFailed("No image was generated. Is your Dockerfile empty?")
        return last.image_id

    def skip_unused(self) -> None:
        """Only some stages are built (Step M counts only them): a duplicate
        stage name still fails (before any stage); the ARGs of the skipped
        stages count as consumed, as when dockerd builds them."""
        for s in self.df.stages_up_to(self.opts.target):
            dup = self.df.duplicate_stage_name(s)
            if dup:
                raise InvalidParameter(dup)
            if s.index not in self.shared.built:
                for c in s.commands:
                    if isinstance(c, ArgInstruction):
                        self.build_args.referenced.update(a.key for a in c.args)

    def build_stage(self, stage: Stage) -> _State:
        """FROM and the stage's commands, printed."""
        dup = self.df.duplicate_stage_name(stage)
        if dup:
            raise InvalidParameter(dup)
        self.print_step(stage.source_code)
        self.wait_prefix(0)
        st = self.begin_stage(stage)
        self.mark_progress(0)
        self.out.stream(f" ---> {truncate_id(st.image_id)}\n")
        for i, cmd in enumerate(stage.commands, 1):
            if self.stopped():
                raise StepFailed("context canceled")
            self.print_step(str(cmd))
            self.wait_prefix(i)
            self.dispatch(st, cmd)
            self.mark_progress(i)
            self.out.stream(f" ---> {truncate_id(st.image_id)}\n")
        return st

    def stage_done(self, stage: Stage, st: _State) -> None:
        """The stage's image, for the stages that read it."""
        sh = self.shared
        with sh.cond:
            sh.images[stage.index] = st.image_id
            sh.cond.notify_all()

    def end_stage(self, st: _State) -> None:
        """After the stage's output: its args, its `aux`."""
        self.build_args.merge_referenced(st.build_args)
        if st.image_id:
            self.out.aux(st.image_id)

    # --- stages side by side -------------------------------------------------------
    def all_parallel(self, stages: list[Stage]) -> _State:
        """Build `stages` on up to `jobs` threads, each as soon as the stages
        it reads are built; print them in order. The earliest stage not
        printed yet always runs (whatever the limit), so a stage waiting on
        an earlier one never waits forever."""
        hard = self.df.stage_deps(self.opts.target, self.opts.build_args)
        # The target's own stages first when workers are short.
        needed = {s.index for s in self.df.needed_stages(self.opts.target,
                                                         self.opts.build_args)}
        order = sorted(stages, key=lambda s: (s.index not in needed, s.index))
        prefixes = _shared_prefixes(stages, self.df.base_names(self.opts.target,
                                                                self.opts.build_args))
        first_step: dict[int, int] = {}
        n = len(self.df.meta_args)
        for s in stages:
            first_step[s.index] = n
            n += 1 + len(s.commands)
        sh = self.shared
        workers: dict[int, _Run] = {}
        threads: list[threading.Thread] = []
        states: dict[int, _State] = {}
        errors: dict[int, BaseException] = {}
        finished: set[int] = set()
        failed: Optional[int] = None
        head = 0  # stages[head] is the first not printed whole
        live = -1

        def work(w: _Run, stage: Stage) -> None:
            try:
                st = w.build_stage(stage)
                w.stage_done(stage, st)
                with sh.cond:
                    states[stage.index] = st
            except BaseException as e:  # noqa: BLE001 - reported in order by the main thread
                with sh.cond:
                    errors[stage.index] = e
            finally:
                with sh.cond:
                    finished.add(stage.index)
                    sh.cond.notify_all()

        try:
            while True:
                start: list[tuple[_Run, Stage]] = []
                stop: list[_Run] = []
                with sh.cond:
                    if errors and (failed is None or min(errors) < failed):
                        failed = min(errors)
                        stop = [w for i, w in workers.items() if i > failed]
                    busy = len(workers) - len(finished)
                    for s in [stages[head], *order]:
                        if s.index in workers or (failed is not None and s.index > failed):
                            continue
                        p = prefixes.get(s.index)
                        ready = hard.get(s.index, set()) <= sh.images.keys() and \
                            (p is None or p[0] in workers)
                        if ready and (busy < self.opts.jobs or s is stages[head]):
                            w = self.worker(s, first_step[s.index], p)
                            workers[s.index] = w
                            start.append((w, s))
                            busy += 1
                    h = stages[head].index
                    head_done = h in finished
                    if not start and not stop and not head_done and \
                            (live == h or h not in workers):
                        sh.cond.wait(0.5)
                        continue
                for w in stop:
                    w.stop()
                for w, s in start:
                    t = threading.Thread(target=work, args=(w, s), daemon=True,
                                         name=f"build-stage-{s.index}")
                    threads.append(t)
                    t.start()
                if h in workers and live != h:
                    live = h
                    out = workers[h].out
                    assert isinstance(out, StageOutput)
                    out.go_live()
                if head_done:
                    if h in errors:
                        raise errors[h]
                    self.end_stage(states[h])
                    head += 1
                    if head == len(stages):
                        return states[h]
        finally:
            for w in workers.values():
                w.stop()
            for t in threads:
                t.join()

    def worker(self, stage: Stage, first_step: int, prefix: Optional[tuple[int, int]]
               ) -> "_Run":
        """A copy of this run for building `stage` beside others."""
        w = copy.copy(self)
        w.out = StageOutput(self.out)
        w.lex = self.df.lex()
        w.index = first_step
        w.stage_index = stage.index
        w.prefix = prefix
        w.build_args = self.build_args.clone()
        w._stop = threading.Event()
        w.running = None
        return w

    def stop(self) -> None:
        """Stop this stage: no further step, its RUN container killed."""
        self._stop.set()
        cid = self.running
        if cid:
            _kill(self.b.containers, cid)

    def stopped(self) -> bool:
        return self.b.cancelled.is_set() or self._stop.is_set()

    def wait_for(self, ready: Callable[[], bool]) -> None:
        sh = self.shared
        with sh.cond:
            while not ready():
                if self.stopped():
                    raise StepFailed("context canceled")
                sh.cond.wait(0.2)

    def wait_prefix(self, steps: int) -> None:
        """Before this stage's step `steps` (0: FROM): the earlier stage it
        repeats has made that step's image, to be found in the cache."""
        if self.prefix is not None and steps <= self.prefix[1]:
            p = self.prefix[0]
            self.wait_for(lambda: self.shared.progress.get(p, -1) >= steps)

    def mark_progress(self, steps: int) -> None:
        sh = self.shared
        with sh.cond:
            sh.progress[self.stage_index] = steps
            sh.cond.notify_all()

    def stage_named(self, name: str) -> Optional[int]:
        """The earlier stage called `name` (the first of that name), None
        when there is none (then `name` is an image)."""
        for s in self.df.stages[:self.stage_index]:
            if s.name and s.name == name.lower():
                return s.index if s.index in self.shared.built else None
        return None

    def stage_image(self, index: int) -> Image:
        """An earlier stage's image, once it is built."""
        sh = self.shared
        if index not in sh.built:
            raise StepFailed(f"invalid from flag value {index}: the stage is not built")
        self.wait_for(lambda: index in sh.images)
        return self.b.store.images.get(sh.images[index])

    # --- FROM -----------------------------------------------------------------------
    def begin_stage(self, stage: Stage) -> _State:
        args = self.build_args.for_stage()
        meta = self.build_args.get_all_meta()
        frm = stage.from_.expand(lambda w: self.lex.process_word(w, meta))
        if frm.platform:
            check_platform(frm.platform)
        base = self.base_image(frm)
        rc: dict[str, Any] = copy.deepcopy((base.config.get("config") or {}) if base else {})
        env = list(rc.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            env.append(DEFAULT_PATH)
        rc["Env"] = env
        rc["OpenStdin"] = False
        rc["StdinOnce"] = False
        st = _State(image_id=base.id if base else "", run_config=rc, build_args=args,
                    base=base, stage_name=stage.name)
        if base is not None:
            st.arch = base.config.get("architecture") or "amd64"
            st.os = base.config.get("os") or "linux"
            st.run_config["Image"] = base.id
        triggers = list(rc.get("OnBuild") or [])
        st.run_config["OnBuild"] = None
        if triggers:
            # dockerd's writes: the count, the plural "s" on its own, the newline.
            n = len(triggers)
            self.out.stream(f"# Executing {n} build trigger")
            if n > 1:
                self.out.stream("s")
            self.out.stream("\n")
            for t in triggers:
                try:
                    ins = parse_trigger(t)
                except DockyardError as e:
                    raise StepFailed(str(e)) from None
                self.dispatch(st, ins)
        return st

    def base_image(self, frm: FromInstruction) -> Optional[Image]:
        name = frm.base_name
        if name.lower() == "scratch":
            return None
        i = self.stage_named(name)
        if i is not None:
            return self.stage_image(i)
        # A number is an image name here: stage indexes are for COPY --from only.
        if not self.opts.pull:
            try:
                return self.b.store.images.resolve(name)
            except NotFound:
                pass
        if self.b.puller is None:
            raise StepFailed(f"pull access denied for {name}, repository does not exist or "
                             "may require 'docker login'")
        return self.b.puller(name, self.out.send, frm.platform or self.opts.platform or None,
                             self.opts.auth_configs)

    # --- each instruction -------------------------------------------------------------
    def expand_fn(self, st: _State) -> Callable[[str], str]:
        env = st.build_args.expansion_env(st.run_config.get("Env") or [])
        return lambda w: self.lex.process_word(w, env)

    def dispatch(self, st: _State, cmd: Any) -> None:
        try:
            self._dispatch(st, cmd)
        except StepFailed:
            raise
        except DockyardError as e:
            raise StepFailed(str(e)) from None

    def _dispatch(self, st: _State, cmd: Any) -> None:
        rc = st.run_config
        if isinstance(cmd, EnvInstruction):
            cmd = cmd.expand(self.expand_fn(st))
            env = list(rc.get("Env") or [])
            for kv in cmd.env:
                # A variable already set keeps its place (dockerd's dispatchEnv).
                keys = [e.split("=", 1)[0] for e in env]
                if kv.key in keys:
                    env[keys.index(kv.key)] = f"{kv.key}={kv.value}"
                else:
                    env.append(f"{kv.key}={kv.value}")
            rc["Env"] = env
            self.commit_meta(st, "ENV " + " ".join(str(kv) for kv in cmd.env))
        elif isinstance(cmd, LabelInstruction):
            cmd = cmd.expand(self.expand_fn(st))
            labels = dict(rc.get("Labels") or {})
            for kv in cmd.labels:
                labels[kv.key] = kv.value
            rc["Labels"] = labels
            self.commit_meta(st, "LABEL " + " ".join(str(kv) for kv in cmd.labels))
        elif isinstance(cmd, MaintainerInstruction):
            st.maintainer = cmd.maintainer
            self.commit_meta(st, "MAINTAINER " + cmd.maintainer)
        elif isinstance(cmd, ExposeInstruction):
            env = st.build_args.expansion_env(rc.get("Env") or [])
            cmd = cmd.expand_ports(lambda w: self.lex.process_words(w, env))
            ports = dict(rc.get("ExposedPorts") or {})
            for p in cmd.ports:
                for k in _port_specs(p):
                    ports[k] = {}
            rc["ExposedPorts"] = ports
            self.commit_meta(st, "EXPOSE " + " ".join(cmd.ports))
        elif isinstance(cmd, UserInstruction):
            cmd = cmd.expand(self.expand_fn(st))
            rc["User"] = cmd.user
            self.commit_meta(st, "USER " + cmd.user)
        elif isinstance(cmd, VolumeInstruction):
            cmd = cmd.expand(self.expand_fn(st))
            vols = dict(rc.get("Volumes") or {})
            for v in cmd.volumes:
                if not v.strip():
                    raise StepFailed("VOLUME specified can not be an empty string")
                vols[v] = {}
            rc["Volumes"] = vols
            self.commit_meta(st, f"VOLUME [{' '.join(cmd.volumes)}]")
        elif isinstance(cmd, StopsignalInstruction):
            cmd = cmd.expand(self.expand_fn(st))
            _check_signal(cmd.signal)
            rc["StopSignal"] = cmd.signal
            self.commit_meta(st, "STOPSIGNAL " + cmd.signal)
        elif isinstance(cmd, HealthcheckInstruction):
            old = (rc.get("Healthcheck") or {}).get("Test") or []
            if old and old[0] != "NONE":
                self.out.stream(f"Note: overriding previous HEALTHCHECK: [{' '.join(old)}]\n")
            h = cmd.health
            rc["Healthcheck"] = h.to_config()
            desc = (f"&{{[{' '.join(go_quote(t) for t in h.test)}] "
                    f"{go_quote(format_go_duration(h.interval))} "
                    f"{go_quote(format_go_duration(h.timeout))} "
                    f"{go_quote(format_go_duration(h.start_period))} {_go_quote_rune(h.retries)}}}")
            self.commit_meta(st, "HEALTHCHECK " + desc)
        elif isinstance(cmd, ShellInstruction):
            rc["Shell"] = list(cmd.shell)
            self.commit_meta(st, f"SHELL [{' '.join(cmd.shell)}]")
        elif isinstance(cmd, ArgInstruction):
            cmd_e = cmd.expand(self.expand_fn(st))
            for a in cmd_e.args:
                st.build_args.add_arg(a.key, a.value)
            self.commit_meta(st, "ARG " + " ".join(str(a) for a in cmd_e.args))
        elif isinstance(cmd, OnbuildInstruction):
            rc["OnBuild"] = [*(rc.get("OnBuild") or []), cmd.expression]
            self.commit_meta(st, "ONBUILD " + cmd.expression)
        elif isinstance(cmd, CmdInstruction):
            argv = self.resolve_cmd(st, cmd.cmd_line or [], cmd.prepend_shell)
            rc["Cmd"] = argv
            st.cmd_set = True
            self.commit_meta(st, f"CMD [{' '.join(go_quote(a) for a in argv)}]")
        elif isinstance(cmd, EntrypointInstruction):
            argv = None if cmd.cmd_line is None else \
                self.resolve_cmd(st, cmd.cmd_line, cmd.prepend_shell)
            rc["Entrypoint"] = argv
            if not st.cmd_set:
                rc["Cmd"] = None
            self.commit_meta(st, f"ENTRYPOINT [{' '.join(go_quote(a) for a in argv or [])}]")
        elif isinstance(cmd, WorkdirInstruction):
            self.workdir(st, cmd.expand(self.expand_fn(st)))
        elif isinstance(cmd, RunInstruction):
            self.run(st, cmd)
        elif isinstance(cmd, (CopyInstruction, AddInstruction)):
            self.copy(st, cmd.expand(self.expand_fn(st)))
        else:
            raise StepFailed(f"unsupported instruction: {cmd.name}")

    def resolve_cmd(self, st: _State, line: list[str], prepend_shell: bool) -> list[str]:
        if prepend_shell:
            shell = list(st.run_config.get("Shell") or DEFAULT_SHELL)
            return shell + [" ".join(line)]
        return list(line)

    # --- committing -------------------------------------------------------------
    def probe(self, st: _State, probe_cfg: dict[str, Any]) -> bool:
        """` ---> Using cache` when an image from this step exists."""
        if self.opts.no_cache:
            return False
        hit = self.b.cache.lookup(st.image_id, step_key(probe_cfg))
        if self.opts.cache_from:
            # dockerd's ImageCache with cache-from sources: a local hit counts
            # only inside the listed images' lineage; else their histories.
            if hit is not None and hit not in self.cache_from_chain():
                hit = None
            if hit is None:
                hit = self.history_hit(st, probe_cfg)
        if hit is None:
            return False
        self.out.stream(" ---> Using cache\n")
        st.image_id = hit
        st.run_config["Image"] = hit
        return True

    def history_hit(self, st: _State, probe_cfg: dict[str, Any]) -> Optional[str]:
        """A cache-from image whose history and layers extend the current
        image's and whose next history entry is this step (it needs no
        parent chain: `docker load`ed images work). Its last step is the
        image itself; an earlier one is restored as a new image."""
        images = self.b.store.images
        parent = images.get(st.image_id) if st.image_id else None
        ph = list((parent.config.get("history") or []) if parent else [])
        pd = list(((parent.config.get("rootfs") or {}).get("diff_ids") or []) if parent else [])
        created_by = " ".join(probe_cfg.get("Cmd") or [])
        for target in self.cache_from_images():
            th = target.config.get("history") or []
            td = (target.config.get("rootfs") or {}).get("diff_ids") or []
            if not th or len(th) <= len(ph):
                continue
            if (ph or pd) and (len(pd) > len(td) or th[:len(ph)] != ph or td[:len(pd)] != pd):
                continue
            entry = th[len(ph)]
            if entry.get("created_by", "") != created_by:
                continue
            self._cache_sources = [target]  # as dockerd: no jumping between targets
            if len(th) - 1 == len(ph):
                return target.id
            rootfs: dict[str, Any] = {"type": "layers"}
            diff_ids = list(pd)
            if not entry.get("empty_layer"):
                layer_index = sum(1 for h in th[:len(ph)] if not h.get("empty_layer"))
                diff_ids.append(td[layer_index])
            if diff_ids:
                rootfs["diff_ids"] = diff_ids
            cfg = target.config
            raw: dict[str, Any] = {
                "architecture": cfg.get("architecture") or "amd64",
                "config": container_config(probe_cfg),
                "container_config": container_config({}),
                "created": entry.get("created", ""),
                "docker_version": DOCKER_VERSION,
                "history": [*ph, entry],
                "os": cfg.get("os") or "linux",
                "rootfs": rootfs,
            }
            if cfg.get("author"):
                raw["author"] = cfg["author"]
            raw = {k: raw[k] for k in sorted(raw)}
            # Not a local build result: only cachefrom finds it again (dockerd
            # does not mark restored images built locally).
            return images.create(encode(raw), parent=st.image_id).id
        return None

    def cache_from_images(self) -> list[Image]:
        if self._cache_sources is None:
            found: list[Image] = []
            for ref in self.opts.cache_from:
                try:
                    found.append(self.b.store.images.resolve(ref))
                except DockyardError:
                    continue
            self._cache_sources = found
        return self._cache_sources

    def cache_from_chain(self) -> set[str]:
        if self._cache_from is None:
            ids: set[str] = set()
            for ref in self.opts.cache_from:
                try:
                    img: Optional[Image] = self.b.store.images.resolve(ref)
                except DockyardError:
                    continue
                while img is not None and img.id not in ids:
                    ids.add(img.id)
                    try:
                        img = self.b.store.images.get(img.parent) if img.parent else None
                    except NotFound:
                        img = None
            self._cache_from = ids
        return self._cache_from

    def commit_meta(self, st: _State, comment: str) -> None:
        """A config-only step: dockerd's commit with a `#(nop) ` Cmd, but no
        container is created and no layer written."""
        probe_cfg = self.with_cmd(st, ["/bin/sh", "-c", "#(nop) ", comment])
        if self.probe(st, probe_cfg):
            return
        cid = generate_id()
        self.out.stream(f" ---> Running in {truncate_id(cid)}\n")
        cc = self.as_created(st, probe_cfg, cid)
        self.commit(st, cid, cc, None, cache_cfg=probe_cfg)
        self.removing(cid)

    def as_created(self, st: _State, probe_cfg: dict[str, Any], cid: str) -> dict[str, Any]:
        """The step's container config as dockerd's container create leaves it
        (it merges the image's config into the config it is given, and
        dockerd's step configs share the Healthcheck with the stage's):
        the hostname set, labels never null, the healthcheck's unset fields
        taken from the image's, in the stage's config too."""
        cc = dict(probe_cfg, Hostname=truncate_id(cid))
        if cc.get("Labels") is None:
            cc["Labels"] = {}
        parent = self.b.store.images.get(st.image_id) if st.image_id else None
        image_hc = ((parent.config.get("config") or {}).get("Healthcheck")
                    if parent else None)
        if image_hc:
            mine = st.run_config.get("Healthcheck")
            if mine is None:
                cc["Healthcheck"] = copy.deepcopy(image_hc)
            else:
                if not mine.get("Test"):
                    mine["Test"] = image_hc.get("Test")
                for k in ("Interval", "Timeout", "StartPeriod", "Retries"):
                    if not mine.get(k) and image_hc.get(k):
                        mine[k] = image_hc[k]
                cc["Healthcheck"] = copy.deepcopy(mine)
        return cc

    def removing(self, cid: str) -> None:
        if self.opts.remove or self.opts.force_remove:
            self.out.stream(f"Removing intermediate container {truncate_id(cid)}\n")

    def with_cmd(self, st: _State, cmd: list[str]) -> dict[str, Any]:
        cfg = copy.deepcopy(st.run_config)
        cfg["Cmd"] = cmd
        return cfg

    def commit(self, st: _State, cid: Optional[str], container_cfg: dict[str, Any],
               layer_diff_id: Optional[str], cache_cfg: Optional[dict[str, Any]] = None) -> str:
        """Record the step's image on the current one (its parent) and move the
        stage on to it."""
        parent = self.b.store.images.get(st.image_id) if st.image_id else None
        pcfg = parent.config if parent else {}
        created = now_rfc3339()
        hist: dict[str, Any] = {"created": created}
        if st.maintainer:
            hist["author"] = st.maintainer
        hist["created_by"] = " ".join(container_cfg.get("Cmd") or [])
        if layer_diff_id is None:
            hist["empty_layer"] = True
        diff_ids = list((pcfg.get("rootfs") or {}).get("diff_ids") or [])
        if layer_diff_id is not None:
            diff_ids.append(layer_diff_id)
        rootfs: dict[str, Any] = {"type": "layers"}
        if diff_ids:
            rootfs["diff_ids"] = diff_ids
        config = copy.deepcopy(st.run_config)
        config["Image"] = st.image_id
        cc = copy.deepcopy(container_cfg)
        cc["Image"] = st.image_id
        raw: dict[str, Any] = {
            "architecture": st.arch,
            "config": container_config(config),
            "container": cid,
            "container_config": container_config(cc),
            "created": created,
            "docker_version": DOCKER_VERSION,
            "history": [*(pcfg.get("history") or []), hist],
            "os": st.os,
            "rootfs": rootfs,
        }
        if st.maintainer:
            raw["author"] = st.maintainer
        if cid is None:
            del raw["container"]
        raw = {k: raw[k] for k in sorted(raw)}
        # dockerd emits no image event for a step's image (only the final tags).
        img = self.b.store.images.create(encode(raw), parent=st.image_id)
        self.b.cache.record(st.image_id, step_key(cache_cfg or container_cfg), img.id)
        st.image_id = img.id
        st.run_config["Image"] = img.id
        return img.id

    def layer_from_dir(self, st: _State, fill: Callable[[str], None]) -> Optional[str]:
        """A layer from what `fill(rootfs)` writes into a new layer mounted on
        the current image; the diff ID, or None when nothing changed. The
        layer is filled in place: its diff is tarred once (for the diff ID
        and the tar-split record), never extracted again."""
        store = self.b.store
        parent = store.images.get(st.image_id) if st.image_id else None
        top = parent.top_layer if parent else None
        parent_cache = store.layers.get(top).cache_id if top else None
        store.layers.check_depth(top)
        cache_id = store.layers.prepare(parent_cache)
        tmpdir = store.new_tempdir()
        try:
            root = store.driver.get(cache_id)
            try:
                fill(root)
            finally:
                store.driver.put(cache_id)
            tarpath = str(tmpdir / "layer.tar")
            info = store.driver.diff(cache_id, parent_cache, tarpath)
            if info.diff_id == EMPTY_LAYER_DIFF_ID:
                store.layers.discard(cache_id)
                return None
            _core.record_layer_split(tarpath, str(store.layers.split_path(cache_id)))
            # Gone before the commit's sync: a deleted file's dirty pages are
            # dropped, not written to the disk (the tar is as big as the layer).
            shutil.rmtree(tmpdir, ignore_errors=True)
            return store.layers.commit(top, cache_id, info.diff_id, info.size).diff_id
        except BaseException:
            store.layers.discard(cache_id)
            raise
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    # --- WORKDIR ---------------------------------------------------------------------
    def workdir(self, st: _State, cmd: WorkdirInstruction) -> None:
        rc = st.run_config
        # As dockerd: an absolute path is kept as written (`/tmp/` stays so in the
        # config and history), a relative one is joined to the current and cleaned.
        path = cmd.path
        if not path.startswith("/"):
            path = _clean(os.path.join("/", rc.get("WorkingDir") or "/", path))
        rc["WorkingDir"] = path
        comment = f"WORKDIR {path}"
        probe_cfg = self.with_cmd(st, ["/bin/sh", "-c", "#(nop) " + comment])
        if self.probe(st, probe_cfg):
            return
        cid = generate_id()
        self.out.stream(f" ---> Running in {truncate_id(cid)}\n")
        diff = None
        if st.image_id:
            diff = self.layer_from_dir(st, lambda root: _mkdir_in(root, _clean(path),
                                                                  rc.get("User")))
        cc = self.as_created(st, probe_cfg, cid)
        self.commit(st, cid, cc, diff, cache_cfg=probe_cfg)
        self.removing(cid)

    # --- COPY / ADD ------------------------------------------------------------------
    def copy(self, st: _State, cmd: CopyInstruction | AddInstruction) -> None:
        from_image: Optional[Image] = None
        if isinstance(cmd, CopyInstruction) and cmd.from_:
            from_image = self.copy_from_image(cmd.from_)
        # `--chmod` and `--link` are BuildKit's (dockerd 20.10 refuses them):
        # extensions here; --link (layer independence) changes nothing in a
        # classic build's result.
        release: Optional[Callable[[], None]] = None
        try:
            src_root: Optional[Path] = None
            if from_image is not None:
                src_root, release = self.mount_image(from_image)
            # A COPY from the context is probed on the index first: a hit
            # needs no file of the context on disk.
            # (A remote Dockerfile has no context: only URLs and --from to copy.)
            ctx = None if src_root else self.context
            indexed = ctx is not None and isinstance(cmd, CopyInstruction)

            def plan_for(on_index: bool) -> copyfiles.CopyPlan:
                try:
                    return copyfiles.plan_copy(
                        list(cmd.sources), cmd.dest,
                        context=None if ctx is None or on_index else ctx.path(),
                        context_index=ctx if on_index else None,
                        src_root=src_root, is_add=isinstance(cmd, AddInstruction),
                        chown=cmd.chown, chmod=cmd.chmod or None,
                        context_sums=None if ctx is None else self.context_sums())
                except copyfiles.CopyError as e:
                    raise StepFailed(str(e)) from None

            plan = plan_for(indexed)
            try:
                probe_cfg = self.with_cmd(st, ["/bin/sh", "-c", "#(nop) " + plan.comment])
                if self.probe(st, probe_cfg):
                    return
                if indexed:  # a miss: the files are needed now
                    files = plan.on_files(ctx.path())
                    plan.close()
                    plan = files
                workdir = st.run_config.get("WorkingDir") or "/"

                def fill(root: str) -> None:
                    try:
                        plan.apply(Path(root), workdir, Path(root))
                    except copyfiles.CopyError as e:
                        raise StepFailed(str(e)) from None

                diff = self.layer_from_dir(st, fill)
            finally:
                plan.close()
        finally:
            if release is not None:
                release()
        # dockerd exports COPY's image without a container: no `container`,
        # the step's config as it is.
        self.commit(st, None, probe_cfg, diff)

    def context_sums(self) -> "copyfiles.ContextSums":
        """The context's entry sums, one table per build (COPY steps share it)."""
        sh = self.shared
        with sh.cond:
            if sh.context_sums is None:
                assert self.context is not None
                sh.context_sums = copyfiles.ContextSums(self.context.sums())
            return sh.context_sums

    def copy_from_image(self, ref: str) -> Image:
        named = self.stage_named(ref)
        if named is not None:
            return self.stage_image(named)
        if ref.isdigit():
            i = int(ref)
            if i < self.stage_index:
                return self.stage_image(i)
            raise StepFailed(f"invalid from flag value {ref}: refers to current build stage")
        try:
            return self.b.store.images.resolve(ref)
        except NotFound:
            if self.b.puller is None:
                raise
        try:
            return self.b.puller(ref, self.out.send, None, self.opts.auth_configs)
        except DockyardError as e:
            raise StepFailed(f"invalid from flag value {ref}: {e}") from None

    def mount_image(self, img: Image) -> tuple[Path, Callable[[], None]]:
        """`img`'s rootfs, mounted read-only for COPY --from, and its release."""
        store = self.b.store
        top = img.top_layer
        if not top:
            raise StepFailed("COPY failed: no source files were specified")
        cache_id = store.layers.get(top).cache_id
        tmp_id = generate_id()
        store.driver.create(tmp_id, cache_id, read_only=True)
        try:
            root = store.driver.get(tmp_id)
        except BaseException:
            store.driver.remove(tmp_id)
            raise
        return Path(root), lambda: (store.driver.put(tmp_id), store.driver.remove(tmp_id))

    # --- RUN -------------------------------------------------------------------------
    def run(self, st: _State, cmd: RunInstruction) -> None:
        # --mount, --network and --security are BuildKit's (dockerd 20.10
        # refuses them): extensions here, see runmounts.
        if cmd.security == "insecure":
            raise StepFailed("RUN --security=insecure needs BuildKit's security.insecure "
                             "entitlement, which the classic builder does not grant")
        rc = st.run_config
        if cmd.heredocs:
            argv = self.heredoc_argv(st, cmd)
        else:
            argv = self.resolve_cmd(st, cmd.cmd_line or [], cmd.prepend_shell)
        allowed = st.build_args.filter_allowed(rc.get("Env") or [])
        save_cmd = argv
        if allowed:
            save_cmd = st.build_args.run_cmd_prefix(rc.get("Env") or []) + argv
        mounts: Optional[RunMounts] = None
        if cmd.mounts:
            try:
                mounts = RunMounts(
                    list(cmd.mounts), rc.get("WorkingDir") or "/", self.b.mounts_root,
                    self.b.scratch, self.context_path, self.context_hash,
                    self.copy_from_image, self.mount_image)
                save_cmd = mounts.key() + save_cmd
            except MountError as e:
                raise StepFailed(str(e)) from None
        if cmd.network != "default":
            save_cmd = [f"--network={cmd.network}"] + save_cmd
        probe_cfg = self.with_cmd(st, save_cmd)
        probe_cfg["Entrypoint"] = None
        if self.probe(st, probe_cfg):
            return
        try:
            self.run_container_step(st, cmd, argv, allowed, probe_cfg, mounts)
        finally:
            if mounts is not None:
                mounts.close()

    def context_path(self) -> Path:
        if self.context is None:
            raise MountError("missing build context")
        return self.context.path()

    def context_hash(self, path: str) -> str:
        """A context path's content hash, as a COPY of it would have it."""
        if self.context is None:
            raise MountError("missing build context")
        try:
            with copyfiles.plan_copy([path], "/x/", context=None, context_index=self.context,
                                     src_root=None, is_add=False,
                                     context_sums=self.context_sums()) as plan:
                return plan.source_hash
        except copyfiles.CopyError as e:
            raise MountError(str(e)) from None

    def run_container_step(self, st: _State, cmd: RunInstruction, argv: list[str],
                           allowed: list[str], probe_cfg: dict[str, Any],
                           mounts: Optional[RunMounts]) -> None:
        rc = st.run_config
        if not st.image_id:
            # dockerd creates the container on an empty rootfs and fails to start it.
            self.out.stream(f" ---> Running in {truncate_id(generate_id())}\n")
            raise StepFailed("failed to create shim task: OCI runtime create failed: runc create "
                             "failed: unable to start container process: exec: "
                             f"{go_quote(argv[0] if argv else '')}: stat {argv[0] if argv else ''}"
                             ": no such file or directory: unknown")
        run_cfg = copy.deepcopy(rc)
        # Entrypoint and Cmd as one argv: the image's entrypoint does not wrap a RUN.
        run_cfg["Entrypoint"] = argv
        run_cfg["Cmd"] = None
        run_cfg["Env"] = list(rc.get("Env") or []) + allowed
        run_cfg["Healthcheck"] = {"Test": ["NONE"]}
        run_cfg["Image"] = st.image_id
        if rc.get("WorkingDir"):
            # dockerd cleans a container's working directory when it creates it
            # (`WORKDIR /w/../v` runs in /v and makes no /w).
            run_cfg["WorkingDir"] = _clean(rc["WorkingDir"])
        run_cfg["AttachStdout"] = run_cfg["AttachStderr"] = True
        hc = dict(self.opts.host_config)
        hc["LogConfig"] = {"Type": "none", "Config": {}}
        hc.setdefault("NetworkMode", "default")
        if cmd.network != "default":
            hc["NetworkMode"] = cmd.network
        existed: dict[str, bool] = {}
        if mounts is not None:
            try:
                hc["Mounts"] = list(hc.get("Mounts") or []) + mounts.prepare()
            except (MountError, OSError) as e:
                raise StepFailed(str(e)) from None
            image_root, release = self.mount_image(self.b.store.images.get(st.image_id))
            try:
                existed = image_paths_exist(image_root, mounts.paths_to_check())
            finally:
                release()
        c = self.b.containers.create(run_cfg, hc)
        self.b.inflight.add(c.id)
        self.out.stream(f" ---> Running in {truncate_id(c.id)}\n")
        ok = exited = False
        try:
            # Registered, then checked: a concurrent stop sees the container or
            # this sees the stop.
            self.running = c.id
            self.b.running.add(c.id)
            if self.stopped():
                raise StepFailed("context canceled")
            code = self.run_container(c.id)
            self.running = None
            self.b.running.discard(c.id)
            if self.stopped():
                raise StepFailed("context canceled")
            exited = True
            if code != 0:
                raise StepFailed(f"The command '{' '.join(argv)}' returned a non-zero code: "
                                 f"{code}", code)
            if mounts is not None:
                root = self.b.store.driver.get(c.id)
                try:
                    mounts.prune(Path(root), existed)
                finally:
                    self.b.store.driver.put(c.id)
            diff = self.diff_container(c.id, keep=not self.opts.remove)
            self.commit(st, c.id, probe_cfg, diff)
            ok = True
        finally:
            self.running = None
            self.b.running.discard(c.id)
            if (ok and self.opts.remove) or (exited and self.opts.force_remove):
                self.removing(c.id)
                self.remove_container(c.id)
            elif not exited:
                # Cancelled (the client went away) or the daemon failed: the
                # container must not outlive the build.
                self.remove_container(c.id)
            # A failed command's container stays unless forcerm, and with rm=0
            # every step's does, as with dockerd.
            self.b.inflight.done(c.id)

    def heredoc_argv(self, st: _State, cmd: RunInstruction) -> list[str]:
        """`RUN <<EOF` (BuildKit's extension; dockerd 20.10 refuses it): a
        lone heredoc is the script the shell runs (a `#!` one runs as a
        file), otherwise the command and its heredocs go to the shell whole."""
        line = cmd.cmd_line or []
        if not cmd.prepend_shell or len(line) != 1:
            raise StepFailed(f"parsing produced an invalid run command: {line}")
        shell = list(st.run_config.get("Shell") or DEFAULT_SHELL)
        lone = parse_heredoc(line[0])
        if lone is None:
            full = line[0] + "".join(f"\n{h.content}{h.name}" for h in cmd.heredocs)
            return shell + [full]
        h = cmd.heredocs[0]
        data = chomp_heredoc_content(h.content) if h.chomp else h.content
        if not data.startswith("#!"):
            return shell + [data]
        # A script with its interpreter: written to a file, run, removed.
        end = "DOCKYARD_HEREDOC_" + generate_id()[:16]
        return shell + [f"f=$(mktemp) && cat > \"$f\" <<'{end}'\n{data}{end}\n"
                        "chmod +x \"$f\" && \"$f\"; r=$?; rm -f \"$f\"; exit $r"]

    def remove_container(self, cid: str) -> None:
        try:
            # With its anonymous volumes (the image's VOLUMEs), as dockerd's builder.
            self.b.containers.remove(cid, force=True, volumes=True)
        except NotFound:
            pass

    def run_container(self, cid: str) -> int:
        """Start the prepared container, stream its output, wait for its exit."""
        svc = self.b.containers
        svc.prepare(cid)
        sock = str(svc.state_dir(cid) / "attach.sock")
        c = svc.get(cid)
        svc.emit(c, "attach")  # the builder attaches before it starts, as dockerd's

        # Output arrives in arbitrary chunks: a character split between two
        # is decoded whole.
        out_dec = codecs.getincrementaldecoder("utf-8")("replace")
        err_dec = codecs.getincrementaldecoder("utf-8")("replace")

        async def go() -> None:
            conn = await ShimConnection.open(sock, 6)
            try:
                await conn.send(START)
                result: dict[str, Any] | None = None
                while True:
                    kind, payload = await conn.recv()
                    if kind == START_RESULT and result is None:
                        result = json.loads(payload or b"{}")
                        res = result
                        await asyncio.to_thread(svc.start, cid, lambda c: res)
                        continue
                    if kind == OUT:
                        text = out_dec.decode(payload)
                        if text:
                            self.out.stream(text)
                    elif kind == ERR:
                        text = err_dec.decode(payload)
                        if text:
                            self.out.stderr(text)
                    elif kind in (EXIT, -1):
                        for dec, send in ((out_dec, self.out.stream), (err_dec, self.out.stderr)):
                            rest = dec.decode(b"", final=True)
                            if rest:
                                send(rest)
                        if result is None:
                            await asyncio.to_thread(
                                svc.start, cid,
                                lambda c: {"error": "the container's supervisor went away",
                                           "exit_code": 128})
                        return
            finally:
                conn.close()

        asyncio.run(go())
        done = svc.wait_exit(cid)
        svc.emit(c, "detach")
        return int((done.state if done else {}).get("ExitCode", 0))

    def diff_container(self, cid: str, keep: bool) -> Optional[str]:
        """The container's changes as a layer on its image's; None when empty.
        Unless the container is `keep`t, its upper directory becomes the
        layer (the diff is tarred once, for the diff ID and tar-split
        record); otherwise, or where the driver can't move it, the diff is
        extracted into a new layer."""
        store = self.b.store
        c = self.b.containers.get(cid)
        top = store.images.get(c.image_id).top_layer
        tmpdir = store.new_tempdir()
        try:
            tarpath = str(tmpdir / "layer.tar")
            info = store.driver.diff(cid, f"{cid}-init", tarpath, "none")
            if info.diff_id == EMPTY_LAYER_DIFF_ID:
                return None
            if not keep:
                store.layers.check_depth(top)
                cache_id = store.layers.prepare(store.layers.get(top).cache_id if top else None)
                try:
                    if store.driver.move_diff(cid, cache_id):
                        _core.record_layer_split(tarpath, str(store.layers.split_path(cache_id)))
                        return store.layers.commit(top, cache_id, info.diff_id,
                                                   info.size).diff_id
                except BaseException:
                    store.layers.discard(cache_id)
                    raise
                store.layers.discard(cache_id)
            layer = store.layers.register(
                top, lambda t, w, s: _core.extract_layer_file(tarpath, t, w, s))
            return layer.diff_id
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _shared_prefixes(stages: list[Stage], bases: dict[int, str]) -> dict[int, tuple[int, int]]:
    """For each stage, the earlier stage on the same base whose first
    instructions it repeats the most of, and how many: those steps have the
    same cache keys, so a sequential build makes them once and then hits."""
    out: dict[int, tuple[int, int]] = {}
    for k, t in enumerate(stages):
        best: Optional[tuple[int, int]] = None
        for p in stages[:k]:
            if bases.get(p.index) != bases.get(t.index):
                continue
            n = 0
            for a, b in zip(p.commands, t.commands):
                if type(a) is not type(b) or str(a) != str(b):
                    break
                n += 1
            if best is None or n > best[1]:
                best = (p.index, n)
        if best is not None:
            out[t.index] = best
    return out


def _check_signal(sig: str) -> None:
    """dockerd's signal.ParseSignal: a number or a name, `SIG` optional."""
    import signal as signals

    if sig.isdigit() and int(sig) > 0:
        return
    name = sig.upper().removeprefix("SIG")
    names = {s.name.removeprefix("SIG") for s in signals.Signals}
    rt = re.fullmatch(r"RT(MIN|MAX)([+-]\d+)?", name)
    if name not in names and rt is None:
        raise StepFailed(f"Invalid signal: {sig}")


def _requires_buildkit(flag: str) -> str:
    return (f"the --{flag} option requires BuildKit. Refer to https://docs.docker.com/go/"
            "buildkit/ to learn how to build images with BuildKit enabled")


def _go_quote_rune(n: int) -> str:
    """Go's `%q` of an int (a rune literal), as in dockerd's HEALTHCHECK comment."""
    ch = chr(n)
    if ch == "'":
        return "'\\''"
    q = go_quote(ch)[1:-1]
    return f"'{q}'"


_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?(?:/(\w+))?$")


def _port_specs(spec: str) -> list[str]:
    """nat.ParsePortSpecs for EXPOSE: `80`, `80/udp`, `8000-8002`."""
    m = _PORT_RE.match(spec)
    if not m:
        raise StepFailed(f"Invalid containerPort: {spec}")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    proto = (m.group(3) or "tcp").lower()
    return [f"{p}/{proto}" for p in range(lo, hi + 1)]


def _clean(path: str) -> str:
    """Go's path.Clean of an absolute path (POSIX normpath keeps a leading `//`)."""
    path = os.path.normpath(path)
    return path[1:] if path.startswith("//") else path


def _mkdir_in(root: str, path: str, user: Optional[str]) -> None:
    """`mkdir -p` of a container path inside `root`, confined to it."""
    parts = [p for p in path.split("/") if p]
    cur = ""
    for p in parts:
        cur = f"{cur}/{p}"
        # The last component unfollowed: a missing one is created, a symlink
        # is followed (inside root) by the next component's resolution.
        sp = scopedpath.resolve(root, cur)
        try:
            if sp.fd is None and sp.name:
                os.mkdir(sp.name, 0o755, dir_fd=sp.dirfd)
        finally:
            sp.close()



