"""Typed Dockerfile instructions, parsed from parser `Node`s with buildkit's
rules and dockerd 20.10's messages (`frontend/dockerfile/instructions`,
vendored buildkit v0.8): argument counts, `--flags` (BFlags), HEALTHCHECK
durations, ONBUILD's forbidden triggers, RUN --mount specs.

Each instruction keeps `original` (the line as dockerd prints it in
`Step N/M : <original>`) and its line range. Instructions that dockerd expands
have `expand(fn)`, which returns a copy with every word passed through `fn`
(a `Lex.process_word` over the step's environment): ENV, LABEL, ADD, COPY,
WORKDIR, USER, VOLUME, STOPSIGNAL, ARG. EXPOSE splits words (`expand_ports`),
FROM expands with the meta ARGs only; RUN, CMD, ENTRYPOINT, SHELL,
HEALTHCHECK, MAINTAINER and ONBUILD never expand.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, TypeVar, Union

from ...errors import InvalidParameter
from .parser import DockerfileParseError, Heredoc, Node, chomp_heredoc_content, parse_heredoc
from .shell import go_quote

__all__ = [
    "AddInstruction", "ArgInstruction", "BFlags", "CmdInstruction", "CopyInstruction",
    "EntrypointInstruction", "EnvInstruction", "ExposeInstruction", "FromInstruction",
    "HealthConfig", "HealthcheckInstruction", "Instruction", "KeyValue", "LabelInstruction",
    "MaintainerInstruction", "Mount", "OnbuildInstruction", "RunInstruction",
    "ShellInstruction", "SourceContent", "StopsignalInstruction", "UnknownInstruction",
    "UserInstruction", "VolumeInstruction", "WorkdirInstruction", "go_duration",
    "parse_instruction", "parse_mount",
]

Expander = Callable[[str], str]
T = TypeVar("T", bound="Instruction")

MINIMUM_DURATION = 1_000_000  # container.MinimumDuration, 1ms in ns


class UnknownInstruction(InvalidParameter):
    def __init__(self, instruction: str, line: int) -> None:
        super().__init__(f"unknown instruction: {instruction.upper()}")
        self.instruction = instruction
        self.line = line


# -- flags -------------------------------------------------------------------

@dataclass
class _Flag:
    name: str
    kind: str  # "bool" | "string" | "strings"
    value: str = ""
    values: list[str] = field(default_factory=list)

    def is_true(self) -> bool:
        return self.value == "true"


class BFlags:
    """An instruction's `--name=value` flags as buildkit's BFlags parses them."""

    def __init__(self, args: list[str]) -> None:
        self.args = list(args)
        self.flags: dict[str, _Flag] = {}
        self.used: dict[str, _Flag] = {}

    def add_bool(self, name: str, default: bool = False) -> _Flag:
        return self._add(_Flag(name, "bool", "true" if default else "false"))

    def add_string(self, name: str, default: str = "") -> _Flag:
        return self._add(_Flag(name, "string", default))

    def add_strings(self, name: str) -> _Flag:
        return self._add(_Flag(name, "strings"))

    def _add(self, f: _Flag) -> _Flag:
        self.flags[f.name] = f
        return f

    def parse(self) -> None:
        for arg in self.args:
            if not arg.startswith("--"):
                raise InvalidParameter(f"Arg should start with -- : {arg}")
            if arg == "--":
                return
            arg = arg[2:]
            name, eq, value = arg.partition("=")
            flag = self.flags.get(name)
            if flag is None:
                raise InvalidParameter(f"Unknown flag: {name}")
            if name in self.used and flag.kind != "strings":
                raise InvalidParameter(f"Duplicate flag specified: {name}")
            self.used[name] = flag
            if flag.kind == "bool":
                if eq and value == "":
                    raise InvalidParameter(f"Missing a value on flag: {name}")
                low = value.lower()
                if low == "":
                    flag.value = "true"
                elif low in ("true", "false"):
                    flag.value = low
                else:
                    raise InvalidParameter(f"Expecting boolean value for flag {name}, not: {value}")
            elif flag.kind == "string":
                if not eq:
                    raise InvalidParameter(f"Missing a value on flag: {name}")
                flag.value = value
            else:
                if not eq:
                    raise InvalidParameter(f"Missing a value on flag: {name}")
                flag.values.append(value)


# -- values ----------------------------------------------------------------------

@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str

    def __str__(self) -> str:
        # How ENV/LABEL commit messages write a pair (`K=v`).
        return f"{self.key}={self.value}"


@dataclass(frozen=True)
class ArgDef:
    """One `ARG name[=default]`; `value` is None without a default."""
    key: str
    value: Optional[str] = None

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


@dataclass(frozen=True)
class SourceContent:
    """A heredoc source of ADD/COPY: a file named `path` holding `data`."""
    path: str
    data: str
    expand: bool


@dataclass
class HealthConfig:
    """HEALTHCHECK's config, durations in nanoseconds (0: inherit/default)."""
    test: list[str]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    retries: int = 0

    def to_config(self) -> dict[str, Any]:
        """The image config's `Healthcheck` object (zero fields omitted)."""
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, v in (("Interval", self.interval), ("Timeout", self.timeout),
                       ("StartPeriod", self.start_period), ("Retries", self.retries)):
            if v:
                out[key] = v
        return out


@dataclass(frozen=True)
class Mount:
    """A `RUN --mount=` spec (buildkit's fields and defaults)."""
    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = True
    cache_id: str = ""
    cache_sharing: str = ""
    required: bool = False
    mode: Optional[int] = None
    uid: Optional[int] = None
    gid: Optional[int] = None


_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING = ("shared", "private", "locked")


def _go_parse_bool(s: str) -> bool:
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(s)


def parse_mount(value: str) -> Mount:
    """One `--mount=` value (CSV of key=value fields) as buildkit parses it."""
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as e:
        raise InvalidParameter(f"failed to parse csv mounts: {e}") from None
    m: dict[str, Any] = {"type": "bind", "readonly": False}
    ro_auto = True
    for f in fields:
        key, eq, val = f.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                m["readonly"], ro_auto = True, False
                continue
            if key in ("readwrite", "rw"):
                m["readonly"], ro_auto = False, False
                continue
            if key == "required":
                if m["type"] in ("secret", "ssh"):
                    m["required"] = True
                    continue
                raise InvalidParameter(f"unexpected key '{key}' for mount type '{m['type']}'")
            raise InvalidParameter(f"invalid field '{f}' must be a key=value pair")
        if key == "type":
            if val.lower() not in _MOUNT_TYPES:
                raise InvalidParameter(f"unsupported mount type {go_quote(val)}")
            m["type"] = val.lower()
        elif key == "from":
            m["from_"] = val
        elif key in ("source", "src"):
            m["source"] = val
        elif key in ("target", "dst", "destination"):
            m["target"] = val
        elif key in ("readonly", "ro", "readwrite", "rw", "required"):
            try:
                b = _go_parse_bool(val)
            except ValueError:
                raise InvalidParameter(f"invalid value for {key}: {val}") from None
            if key == "required":
                if m["type"] not in ("secret", "ssh"):
                    raise InvalidParameter(f"unexpected key '{key}' for mount type '{m['type']}'")
                m["required"] = b
            else:
                m["readonly"] = b if key in ("readonly", "ro") else not b
                ro_auto = False
        elif key == "id":
            m["cache_id"] = val
        elif key == "sharing":
            if val.lower() not in _SHARING:
                raise InvalidParameter(f"unsupported sharing value {go_quote(val)}")
            m["cache_sharing"] = val.lower()
        elif key in ("mode", "uid", "gid"):
            try:
                n = int(val, 8 if key == "mode" else 10)
                if not re.fullmatch(r"[0-7]+" if key == "mode" else r"[0-9]+", val) \
                        or n >= 1 << 32:
                    raise ValueError(val)
            except ValueError:
                raise InvalidParameter(f"invalid value {val} for {key}") from None
            m[key] = n
        else:
            raise InvalidParameter(f"unexpected key '{key}' in '{f}'")
    typ = m["type"]
    file_info = typ in ("secret", "ssh", "cache")
    for k in ("mode", "uid", "gid"):
        if m.get(k) is not None and not file_info:
            raise InvalidParameter(f"{k} not allowed for {go_quote(typ)} type mounts")
    if ro_auto:
        m["readonly"] = typ not in ("cache", "tmpfs")
    if m.get("cache_sharing") and typ != "cache":
        raise InvalidParameter(f"invalid cache sharing set for {typ} mount")
    if typ == "secret":
        if m.get("from_"):
            raise InvalidParameter("secret mount should not have a from")
        if not m.get("source") and not m.get("target") and not m.get("cache_id"):
            raise InvalidParameter("invalid secret mount. one of source, target required")
        if m.get("source") and m.get("cache_id"):
            raise InvalidParameter("both source and id can't be set")
    return Mount(**m)


_DURATION_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def go_duration(s: str) -> int:
    """Go's time.ParseDuration in nanoseconds, with its error messages."""
    orig = s
    bad = InvalidParameter(f"time: invalid duration {go_quote(orig)}")
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise bad
    total = 0.0
    while s:
        m = _DURATION_PART.match(s)
        assert m is not None
        num, unit = m.group(1), m.group(2)
        if num in ("", "."):
            raise bad
        if unit == "":
            raise InvalidParameter(f"time: missing unit in duration {go_quote(orig)}")
        if unit not in _DURATION_UNITS:
            raise InvalidParameter(
                f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        total += float(num) * _DURATION_UNITS[unit]
        s = s[m.end():]
    if total > (1 << 63) - 1:
        raise bad
    return int(-total if neg else total)


def format_go_duration(ns: int) -> str:
    """Go's Duration.String (`1m30s`, `500ms`, `0s`)."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 1000), ("ns", 1)):
            if u >= size:
                return sign + _frac(u, size) + unit
    h, rest = divmod(u, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    out = (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + _frac(rest, 10**9) + "s"
    return sign + out


def _frac(v: int, size: int) -> str:
    whole, part = divmod(v, size)
    if not part:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{part:0{digits}d}".rstrip("0")


# -- instructions ------------------------------------------------------------------

@dataclass
class Instruction:
    """Common fields: `name` in upper case, `original` as dockerd prints it."""
    name: ClassVar[str] = ""
    original: str = field(default="", kw_only=True)
    start_line: int = field(default=0, kw_only=True)
    end_line: int = field(default=0, kw_only=True)
    comments: list[str] = field(default_factory=list, kw_only=True)

    def __str__(self) -> str:
        return self.original

    def expand(self: T, fn: Expander) -> T:
        """A copy with its words expanded; instructions that dockerd never
        expands return themselves."""
        return self


@dataclass
class EnvInstruction(Instruction):
    name: ClassVar[str] = "ENV"
    env: list[KeyValue] = field(default_factory=list)

    def expand(self, fn: Expander) -> "EnvInstruction":
        return dataclasses.replace(self, env=[KeyValue(fn(kv.key), fn(kv.value))
                                              for kv in self.env])


@dataclass
class LabelInstruction(Instruction):
    name: ClassVar[str] = "LABEL"
    labels: list[KeyValue] = field(default_factory=list)
    # `--label` build options are appended as LABELs that never expand.
    no_expand: bool = False

    def expand(self, fn: Expander) -> "LabelInstruction":
        if self.no_expand:
            return self
        return dataclasses.replace(self, labels=[KeyValue(fn(kv.key), fn(kv.value))
                                                 for kv in self.labels])


@dataclass
class MaintainerInstruction(Instruction):
    name: ClassVar[str] = "MAINTAINER"
    maintainer: str = ""


@dataclass
class _CopyLike(Instruction):
    sources: list[str] = field(default_factory=list)
    dest: str = ""
    source_contents: list[SourceContent] = field(default_factory=list)
    chown: str = ""
    chmod: str = ""
    link: bool = False

    def expand(self: T, fn: Expander) -> T:
        c: Any = self
        return dataclasses.replace(c, chown=fn(c.chown), chmod=fn(c.chmod),
                                   sources=[fn(s) for s in c.sources], dest=fn(c.dest))


@dataclass
class AddInstruction(_CopyLike):
    name: ClassVar[str] = "ADD"


@dataclass
class CopyInstruction(_CopyLike):
    name: ClassVar[str] = "COPY"
    # `--from=<stage name|stage index|image>`; dockerd does not expand it.
    from_: str = ""


@dataclass
class FromInstruction(Instruction):
    """A stage's FROM. `base_name` and `platform` are expanded with the meta
    ARGs when the stage starts (`expand`)."""
    name: ClassVar[str] = "FROM"
    base_name: str = ""
    stage_name: str = ""  # lowercased `AS` name, "" without one
    platform: str = ""

    def expand(self, fn: Expander) -> "FromInstruction":
        return dataclasses.replace(self, base_name=fn(self.base_name), platform=fn(self.platform))


@dataclass
class OnbuildInstruction(Instruction):
    name: ClassVar[str] = "ONBUILD"
    # The trigger as written after ONBUILD (stored in the image's OnBuild).
    expression: str = ""


@dataclass
class WorkdirInstruction(Instruction):
    name: ClassVar[str] = "WORKDIR"
    path: str = ""

    def expand(self, fn: Expander) -> "WorkdirInstruction":
        return dataclasses.replace(self, path=fn(self.path))


@dataclass
class _ShellDependent(Instruction):
    """RUN/CMD/ENTRYPOINT: `cmd_line` is the exec-form list, or for shell
    form one string to run with the stage's SHELL (`prepend_shell`)."""
    cmd_line: Optional[list[str]] = None
    prepend_shell: bool = True
    heredocs: list[Heredoc] = field(default_factory=list)


@dataclass
class RunInstruction(_ShellDependent):
    name: ClassVar[str] = "RUN"
    mounts: list[Mount] = field(default_factory=list)
    network: str = "default"
    security: str = "sandbox"
    # The flags given, in order (dockerd 20.10 refuses any: "requires BuildKit").
    flags_used: list[str] = field(default_factory=list)


@dataclass
class CmdInstruction(_ShellDependent):
    name: ClassVar[str] = "CMD"


@dataclass
class EntrypointInstruction(_ShellDependent):
    name: ClassVar[str] = "ENTRYPOINT"


@dataclass
class HealthcheckInstruction(Instruction):
    name: ClassVar[str] = "HEALTHCHECK"
    health: HealthConfig = field(default_factory=lambda: HealthConfig(test=["NONE"]))


@dataclass
class ExposeInstruction(Instruction):
    name: ClassVar[str] = "EXPOSE"
    ports: list[str] = field(default_factory=list)

    def expand_ports(self, words: Callable[[str], list[str]]) -> "ExposeInstruction":
        """Word-to-words expansion (`EXPOSE $PORTS` with PORTS="80 443");
        `words` is a `Lex.process_words` over the step's environment."""
        return dataclasses.replace(self, ports=[w for p in self.ports for w in words(p)])


@dataclass
class UserInstruction(Instruction):
    name: ClassVar[str] = "USER"
    user: str = ""

    def expand(self, fn: Expander) -> "UserInstruction":
        return dataclasses.replace(self, user=fn(self.user))


@dataclass
class VolumeInstruction(Instruction):
    name: ClassVar[str] = "VOLUME"
    volumes: list[str] = field(default_factory=list)

    def expand(self, fn: Expander) -> "VolumeInstruction":
        return dataclasses.replace(self, volumes=[fn(v) for v in self.volumes])


@dataclass
class StopsignalInstruction(Instruction):
    name: ClassVar[str] = "STOPSIGNAL"
    signal: str = ""

    def expand(self, fn: Expander) -> "StopsignalInstruction":
        return dataclasses.replace(self, signal=fn(self.signal))


@dataclass
class ArgInstruction(Instruction):
    name: ClassVar[str] = "ARG"
    args: list[ArgDef] = field(default_factory=list)

    def expand(self, fn: Expander) -> "ArgInstruction":
        return dataclasses.replace(self, args=[
            ArgDef(fn(a.key), None if a.value is None else fn(a.value)) for a in self.args])


@dataclass
class ShellInstruction(Instruction):
    name: ClassVar[str] = "SHELL"
    shell: list[str] = field(default_factory=list)


AnyInstruction = Union[
    EnvInstruction, LabelInstruction, MaintainerInstruction, AddInstruction, CopyInstruction,
    FromInstruction, OnbuildInstruction, WorkdirInstruction, RunInstruction, CmdInstruction,
    EntrypointInstruction, HealthcheckInstruction, ExposeInstruction, UserInstruction,
    VolumeInstruction, StopsignalInstruction, ArgInstruction, ShellInstruction]


# -- parsing -------------------------------------------------------------------------

@dataclass
class _Req:
    command: str
    args: list[str]
    json: bool
    flags: BFlags
    original: str
    node: Node

    def common(self) -> dict[str, Any]:
        return {"original": self.original.strip(), "start_line": self.node.start_line,
                "end_line": self.node.end_line, "comments": list(self.node.prev_comment)}


def _at_least_one(cmd: str) -> InvalidParameter:
    return InvalidParameter(f"{cmd} requires at least one argument")


def _exactly_one(cmd: str) -> InvalidParameter:
    return InvalidParameter(f"{cmd} requires exactly one argument")


def _no_destination(cmd: str) -> InvalidParameter:
    return InvalidParameter(f"{cmd} requires at least two arguments, but only one was provided. "
                            "Destination could not be determined.")


def _blank_names(cmd: str) -> InvalidParameter:
    return InvalidParameter(f"{cmd} names can not be blank")


def _kvps(args: list[str], cmd: str) -> list[KeyValue]:
    if not args:
        raise _at_least_one(cmd)
    if len(args) % 2:
        raise InvalidParameter(f"Bad input to {cmd}, too many arguments")
    out = []
    for k, v in zip(args[::2], args[1::2]):
        if not k:
            raise _blank_names(cmd)
        out.append(KeyValue(k, v))
    return out


def _json_args(req: _Req) -> list[str]:
    if not req.args:
        return []
    if req.json:
        return list(req.args)
    return [" ".join(req.args)]


def _parse_env(req: _Req) -> EnvInstruction:
    req.flags.parse()
    return EnvInstruction(env=_kvps(req.args, "ENV"), **req.common())


def _parse_maintainer(req: _Req) -> MaintainerInstruction:
    if len(req.args) != 1:
        raise _exactly_one("MAINTAINER")
    req.flags.parse()
    return MaintainerInstruction(maintainer=req.args[0], **req.common())


def _parse_label(req: _Req) -> LabelInstruction:
    req.flags.parse()
    return LabelInstruction(labels=_kvps(req.args, "LABEL"), **req.common())


def _sources_and_dest(req: _Req, cmd: str) -> dict[str, Any]:
    *srcs, dest = req.args
    docs = {h.name: h for h in req.node.heredocs}
    if parse_heredoc(dest) is not None and docs:
        raise InvalidParameter(f"{cmd} cannot accept a heredoc as a destination")
    sources: list[str] = []
    contents: list[SourceContent] = []
    for s in srcs:
        h = parse_heredoc(s) if docs else None
        if h is not None:
            doc = docs.get(h.name)
            data = doc.content if doc else ""
            if h.chomp:
                data = chomp_heredoc_content(data)
            contents.append(SourceContent(path=h.name, data=data, expand=h.expand))
        else:
            sources.append(s)
    return {"sources": sources, "dest": dest, "source_contents": contents}


def _parse_add(req: _Req) -> AddInstruction:
    if len(req.args) < 2:
        raise _no_destination("ADD")
    chown = req.flags.add_string("chown")
    chmod = req.flags.add_string("chmod")
    link = req.flags.add_bool("link")
    req.flags.parse()
    return AddInstruction(chown=chown.value, chmod=chmod.value, link=link.is_true(),
                          **_sources_and_dest(req, "ADD"), **req.common())


def _parse_copy(req: _Req) -> CopyInstruction:
    if len(req.args) < 2:
        raise _no_destination("COPY")
    chown = req.flags.add_string("chown")
    from_ = req.flags.add_string("from")
    chmod = req.flags.add_string("chmod")
    link = req.flags.add_bool("link")
    req.flags.parse()
    return CopyInstruction(chown=chown.value, chmod=chmod.value, link=link.is_true(),
                           from_=from_.value, **_sources_and_dest(req, "COPY"), **req.common())


_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*\Z")


def _parse_from(req: _Req) -> FromInstruction:
    stage_name = ""
    args = req.args
    if len(args) == 3 and args[1].lower() == "as":
        stage_name = args[2].lower()
        if not _STAGE_NAME.match(stage_name):
            raise InvalidParameter(f"invalid name for build stage: {go_quote(args[2])}, "
                                   "name can't start with a number or contain symbols")
    elif len(args) != 1:
        raise InvalidParameter("FROM requires either one or three arguments")
    platform = req.flags.add_string("platform")
    req.flags.parse()
    return FromInstruction(base_name=args[0], stage_name=stage_name, platform=platform.value,
                           **req.common())


_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)


def _parse_onbuild(req: _Req) -> OnbuildInstruction:
    if not req.args:
        raise _at_least_one("ONBUILD")
    req.flags.parse()
    trigger = req.args[0].strip().upper()
    if trigger == "ONBUILD":
        raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", req.original, count=1)
    return OnbuildInstruction(expression=expression, **req.common())


def _parse_workdir(req: _Req) -> WorkdirInstruction:
    if len(req.args) != 1:
        raise _exactly_one("WORKDIR")
    req.flags.parse()
    return WorkdirInstruction(path=req.args[0], **req.common())


def _shell_dependent(req: _Req, empty_as_none: bool) -> dict[str, Any]:
    args: Optional[list[str]] = _json_args(req)
    if empty_as_none and not args:
        args = None
    return {"cmd_line": args, "prepend_shell": not req.json, "heredocs": list(req.node.heredocs)}


def _parse_run(req: _Req) -> RunInstruction:
    mount = req.flags.add_strings("mount")
    network = req.flags.add_string("network", "default")
    security = req.flags.add_string("security", "sandbox")
    req.flags.parse()
    used = list(req.flags.used)
    if network.value not in ("default", "none", "host"):
        raise InvalidParameter(f"invalid network mode {go_quote(network.value)}")
    if security.value not in ("sandbox", "insecure"):
        raise InvalidParameter(f"unsupported security mode {go_quote(security.value)}")
    mounts = [parse_mount(v) for v in mount.values]
    return RunInstruction(mounts=mounts, network=network.value, security=security.value,
                          flags_used=used, **_shell_dependent(req, False), **req.common())


def _parse_cmd(req: _Req) -> CmdInstruction:
    req.flags.parse()
    return CmdInstruction(**_shell_dependent(req, False), **req.common())


def _parse_entrypoint(req: _Req) -> EntrypointInstruction:
    req.flags.parse()
    return EntrypointInstruction(**_shell_dependent(req, True), **req.common())


def _opt_interval(f: _Flag) -> int:
    if f.value == "":
        return 0
    d = go_duration(f.value)
    if d < MINIMUM_DURATION:
        raise InvalidParameter(f"Interval {go_quote(f.name)} cannot be less than 1ms")
    return d


def _parse_healthcheck(req: _Req) -> HealthcheckInstruction:
    if not req.args:
        raise _at_least_one("HEALTHCHECK")
    typ = req.args[0].upper()
    rest = req.args[1:]
    if typ == "NONE":
        if rest:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return HealthcheckInstruction(health=HealthConfig(test=["NONE"]), **req.common())
    interval = req.flags.add_string("interval")
    timeout = req.flags.add_string("timeout")
    start_period = req.flags.add_string("start-period")
    retries = req.flags.add_string("retries")
    req.flags.parse()
    if typ != "CMD":
        raise InvalidParameter(f"Unknown type {go_quote(typ)} in HEALTHCHECK (try CMD)")
    cmd = list(rest) if req.json else ([" ".join(rest)] if rest else [])
    if not cmd:
        raise InvalidParameter("Missing command after HEALTHCHECK CMD")
    hc = HealthConfig(test=["CMD" if req.json else "CMD-SHELL", *cmd])
    hc.interval = _opt_interval(interval)
    hc.timeout = _opt_interval(timeout)
    hc.start_period = _opt_interval(start_period)
    if retries.value != "":
        v = retries.value
        if not re.fullmatch(r"[+-]?[0-9]+", v) or not -(1 << 31) <= int(v) < 1 << 31:
            reason = "value out of range" if re.fullmatch(r"[+-]?[0-9]+", v) else "invalid syntax"
            raise InvalidParameter(f"strconv.ParseInt: parsing {go_quote(v)}: {reason}")
        if int(v) < 1:
            raise InvalidParameter(f"--retries must be at least 1 (not {int(v)})")
        hc.retries = int(v)
    return HealthcheckInstruction(health=hc, **req.common())


def _parse_expose(req: _Req) -> ExposeInstruction:
    if not req.args:
        raise _at_least_one("EXPOSE")
    req.flags.parse()
    return ExposeInstruction(ports=sorted(req.args), **req.common())


def _parse_user(req: _Req) -> UserInstruction:
    if len(req.args) != 1:
        raise _exactly_one("USER")
    req.flags.parse()
    return UserInstruction(user=req.args[0], **req.common())


def _parse_volume(req: _Req) -> VolumeInstruction:
    if not req.args:
        raise _at_least_one("VOLUME")
    req.flags.parse()
    vols = []
    for v in req.args:
        v = v.strip()
        if not v:
            raise InvalidParameter("VOLUME specified can not be an empty string")
        vols.append(v)
    return VolumeInstruction(volumes=vols, **req.common())


def _parse_stopsignal(req: _Req) -> StopsignalInstruction:
    # dockerd never parses STOPSIGNAL's flags.
    if len(req.args) != 1:
        raise _exactly_one("STOPSIGNAL")
    return StopsignalInstruction(signal=req.args[0], **req.common())


def _parse_arg(req: _Req) -> ArgInstruction:
    # Nor ARG's.
    if not req.args:
        raise _at_least_one("ARG")
    out = []
    for a in req.args:
        if "=" in a:
            k, _, v = a.partition("=")
            if not k:
                raise _blank_names("ARG")
            out.append(ArgDef(k, v))
        else:
            out.append(ArgDef(a))
    return ArgInstruction(args=out, **req.common())


def _parse_shell(req: _Req) -> ShellInstruction:
    req.flags.parse()
    args = _json_args(req)
    if not args:
        raise _at_least_one("SHELL")
    if not req.json:
        raise InvalidParameter("SHELL requires the arguments to be in JSON form")
    return ShellInstruction(shell=args, **req.common())


_PARSERS: dict[str, Callable[[_Req], Any]] = {
    "env": _parse_env, "maintainer": _parse_maintainer, "label": _parse_label,
    "add": _parse_add, "copy": _parse_copy, "from": _parse_from, "onbuild": _parse_onbuild,
    "workdir": _parse_workdir, "run": _parse_run, "cmd": _parse_cmd,
    "healthcheck": _parse_healthcheck, "entrypoint": _parse_entrypoint,
    "expose": _parse_expose, "user": _parse_user, "volume": _parse_volume,
    "stopsignal": _parse_stopsignal, "arg": _parse_arg, "shell": _parse_shell,
}


def parse_instruction(node: Node) -> AnyInstruction:
    """One parser node as a typed instruction; raises InvalidParameter (or
    UnknownInstruction) with dockerd's message, without the line prefix."""
    fn = _PARSERS.get(node.value)
    if fn is None:
        raise UnknownInstruction(node.value, node.start_line)
    req = _Req(command=node.value, args=node.args(), json=node.is_json,
               flags=BFlags(node.flags), original=node.original, node=node)
    result: AnyInstruction = fn(req)
    return result


def line_error(node: Node, err: Exception) -> DockerfileParseError:
    """dockerd's wrapping of an instruction error."""
    msg = str(err)
    return DockerfileParseError(f"dockerfile parse error line {node.start_line}: {msg}",
                                node.start_line, node.end_line)
