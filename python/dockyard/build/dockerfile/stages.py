"""The stage model of a parsed Dockerfile and the classic builder's build-arg
scoping (moby 20.10 `builder/dockerfile/buildargs.go`).

`load()` parses a Dockerfile's bytes into a `Dockerfile`: the meta ARGs (the
ARGs before the first FROM) and the `Stage`s, each a FROM plus its commands.
`Dockerfile.stages_up_to(target)` is what dockerd 20.10 builds (every stage
up to the target); `Dockerfile.needed_stages(target, ...)` is only what the
target depends on (FROM <stage>, COPY --from=<stage|index>), which Dockyard
may build instead, in parallel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Optional

from ...errors import InvalidParameter
from .instructions import (
    AnyInstruction, ArgInstruction, CopyInstruction, FromInstruction, KeyValue,
    LabelInstruction, RunInstruction, line_error, parse_instruction,
)
from .parser import DockerfileParseError, parse
from .shell import Lex, env_from_list

__all__ = ["BUILTIN_ARGS", "BuildArgs", "Dockerfile", "Stage", "load", "parse_trigger"]

# The proxy args every build accepts without an ARG; they stay out of the
# image history unless the Dockerfile declares them. (20.10 has no ALL_PROXY.)
BUILTIN_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy")


@dataclass
class Stage:
    """One FROM and the instructions up to the next FROM."""
    index: int
    from_: FromInstruction
    commands: list[AnyInstruction] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The lowercased `AS` name, "" without one."""
        return self.from_.stage_name

    @property
    def base_name(self) -> str:
        return self.from_.base_name

    @property
    def source_code(self) -> str:
        """The FROM line as `Step N/M : ...` prints it."""
        return self.from_.original


@dataclass
class Dockerfile:
    meta_args: list[ArgInstruction]
    stages: list[Stage]
    escape_token: str = "\\"
    # Lines for the build output (empty continuation lines, `# syntax=`).
    warnings: list[str] = field(default_factory=list)
    directives: dict[str, str] = field(default_factory=dict)

    def lex(self) -> Lex:
        """The lexer the file's escape token calls for."""
        return Lex(escape_token=self.escape_token)

    def target_index(self, target: str) -> int:
        """The index of the stage named `target` (case-insensitive), or
        dockerd's error."""
        for s in self.stages:
            if s.name and s.name.lower() == target.lower():
                return s.index
        raise InvalidParameter(f"failed to reach build target {target} in Dockerfile")

    def stages_up_to(self, target: str = "") -> list[Stage]:
        """What the classic builder builds: every stage up to the target."""
        if not target:
            return list(self.stages)
        return self.stages[:self.target_index(target) + 1]

    def needed_stages(self, target: str = "",
                      build_args: Optional[Mapping[str, Optional[str]]] = None) -> list[Stage]:
        """Only the stages the target needs, in file order: the target, the
        stages its FROM names (after meta-ARG expansion) and those COPY
        --from names or numbers, transitively. A name that is not an earlier
        stage is an image, as in dockerd."""
        chosen = self.stages_up_to(target)
        if not chosen:
            return []
        deps = self.stage_deps(target, build_args)
        need: set[int] = set()
        todo = [chosen[-1].index]
        while todo:
            i = todo.pop()
            if i not in need:
                need.add(i)
                todo.extend(deps.get(i, ()))
        return [s for s in chosen if s.index in need]

    def stage_deps(self, target: str = "",
                   build_args: Optional[Mapping[str, Optional[str]]] = None
                   ) -> dict[int, set[int]]:
        """For each stage up to the target, the earlier stages it reads: the
        one its FROM names (after meta-ARG expansion) and those COPY --from
        names or numbers."""
        bases = self.base_names(target, build_args)
        deps: dict[int, set[int]] = {}
        for s in self.stages_up_to(target):
            by_name: dict[str, int] = {}
            for p in self.stages[:s.index]:
                # The first stage of a name is the one dockerd finds.
                if p.name:
                    by_name.setdefault(p.name, p.index)
            d: set[int] = set()
            if bases[s.index] in by_name:
                d.add(by_name[bases[s.index]])
            for c in s.commands:
                refs = [c.from_] if isinstance(c, CopyInstruction) and c.from_ else []
                if isinstance(c, RunInstruction):
                    refs += [m.from_ for m in c.mounts if m.from_]
                for ref in (r.lower() for r in refs):
                    if ref in by_name:
                        d.add(by_name[ref])
                    elif ref.isdigit() and int(ref) < s.index:
                        d.add(int(ref))
            deps[s.index] = d
        return deps

    def base_names(self, target: str = "",
                   build_args: Optional[Mapping[str, Optional[str]]] = None) -> dict[int, str]:
        """Each stage's FROM name as the build sees it: expanded with the
        meta ARGs, lowercased (a stage name or an image reference)."""
        meta = self.meta_arg_values(build_args or {})
        lex = self.lex()
        out: dict[int, str] = {}
        for s in self.stages_up_to(target):
            try:
                out[s.index] = lex.process_word(s.base_name, meta).lower()
            except InvalidParameter:
                out[s.index] = s.base_name.lower()
        return out

    def step_texts(self, target: str = "") -> list[str]:
        """dockerd's `Step N/M : <instruction>` lines, in the order it prints
        them: the meta ARGs, then each stage's FROM and commands."""
        texts = [str(a) for a in self.meta_args]
        for s in self.stages_up_to(target):
            texts += [s.source_code, *(str(c) for c in s.commands)]
        return [f"Step {i}/{len(texts)} : {t}" for i, t in enumerate(texts, 1)]

    def duplicate_stage_name(self, stage: Stage) -> str:
        """dockerd's error when `stage` reuses an earlier stage's name (it is
        raised when that stage starts), "" when the name is free."""
        if stage.name and any(p.name == stage.name for p in self.stages[:stage.index]):
            return f"{stage.name} stage name already used"
        return ""

    def meta_arg_values(self, build_args: Mapping[str, Optional[str]]) -> dict[str, str]:
        """The values FROM lines expand with: meta ARG defaults (each
        expanded with the ones before it), overridden by build args."""
        args = BuildArgs(build_args)
        lex = self.lex()
        for meta in self.meta_args:
            meta = meta.expand(lambda w: lex.process_word(w, args.get_all_allowed()))
            for a in meta.args:
                args.add_arg(a.key, a.value)
                args.add_meta_arg(a.key, a.value)
        return args.get_all_meta()

    def total_steps(self, target: str = "") -> int:
        """M in dockerd's `Step N/M`: meta ARGs, FROMs and commands."""
        return len(self.meta_args) + sum(1 + len(s.commands) for s in self.stages_up_to(target))

    def with_labels(self, labels: Mapping[str, str], target: str = "") -> "Dockerfile":
        """The `labels` build option: one unexpanded `LABEL k=v` per key,
        sorted, appended to the last stage built (they count as steps)."""
        if not labels:
            return self
        stages = self.stages_up_to(target)
        last = stages[-1]
        extra = [LabelInstruction(labels=[KeyValue(k, labels[k])], no_expand=True,
                                  original=f"LABEL {k}={labels[k]}") for k in sorted(labels)]
        new_last = dataclasses.replace(last, commands=[*last.commands, *extra])
        return dataclasses.replace(self, stages=[*stages[:-1], new_last])


def load(data: str | bytes, name: str = "Dockerfile", from_context: bool = True
         ) -> Dockerfile:
    """Parse a Dockerfile into stages with dockerd 20.10's errors:
    `the Dockerfile (<name>) cannot be empty`, `failed to parse <name>: ...`
    for line-level errors, `dockerfile parse error line N: ...` for an
    instruction's. A Dockerfile not read from a context (a remote URL's
    text/plain) has its parse errors as they are."""
    if len(data) == 0 and from_context:
        raise InvalidParameter(f"the Dockerfile ({name}) cannot be empty")
    try:
        result = parse(data)
    except DockerfileParseError as e:
        if not from_context:
            raise
        raise DockerfileParseError(f"failed to parse {name}: {e.message}", e.line,
                                   e.end_line) from None
    meta: list[ArgInstruction] = []
    stages: list[Stage] = []
    for node in result.ast.children:
        try:
            ins = parse_instruction(node)
        except InvalidParameter as e:
            raise line_error(node, e) from None
        if not stages and isinstance(ins, ArgInstruction):
            meta.append(ins)
            continue
        if isinstance(ins, FromInstruction):
            stages.append(Stage(index=len(stages), from_=ins))
            continue
        if not stages:
            raise DockerfileParseError("no build stage in current context", node.start_line,
                                       node.end_line)
        stages[-1].commands.append(ins)
    return Dockerfile(meta_args=meta, stages=stages, escape_token=result.escape_token,
                      warnings=list(result.warnings), directives=result.directives)


def parse_trigger(expression: str) -> AnyInstruction:
    """An ONBUILD trigger, parsed as dockerd does when a child image's FROM
    runs it (default escape token)."""
    result = parse(expression)
    if len(result.ast.children) != 1:
        raise InvalidParameter("onbuild trigger should be a single expression")
    node = result.ast.children[0]
    ins = parse_instruction(node)
    if isinstance(ins, FromInstruction):
        raise InvalidParameter("*instructions.Stage is not a command type")
    return ins


class BuildArgs:
    """Which build args a step sees (classic semantics). `from_options` are
    the `buildargs` of the request (a None value: given without a value).

    A stage starts from `for_stage()` (its declared ARGs reset, the meta ARGs
    kept); `add_arg` declares an ARG; `get_all_allowed()` gives the values
    the step may use; `unused_warning()` the line dockerd prints at the end."""

    def __init__(self, from_options: Mapping[str, Optional[str]]) -> None:
        self.from_options: dict[str, Optional[str]] = dict(from_options)
        self.allowed: dict[str, Optional[str]] = {}
        self.allowed_meta: dict[str, Optional[str]] = {}
        self.referenced: set[str] = set()

    def clone(self) -> "BuildArgs":
        c = BuildArgs(self.from_options)
        c.allowed = dict(self.allowed)
        c.allowed_meta = dict(self.allowed_meta)
        c.referenced = set(self.referenced)
        return c

    def for_stage(self) -> "BuildArgs":
        """The args a new stage starts with (dockerd's newDispatchState)."""
        c = self.clone()
        c.allowed = {}
        return c

    def merge_referenced(self, other: "BuildArgs") -> None:
        self.referenced |= other.referenced

    def add_meta_arg(self, key: str, value: Optional[str]) -> None:
        self.allowed_meta[key] = value

    def add_arg(self, key: str, value: Optional[str]) -> None:
        self.allowed[key] = value
        self.referenced.add(key)

    def is_referenced_or_not_builtin(self, key: str) -> bool:
        return key in self.allowed or key not in BUILTIN_ARGS

    def _get(self, key: str, mapping: Mapping[str, Optional[str]]) -> Optional[str]:
        # An option value wins, then the ARG's default, then a meta ARG's value.
        v = self.from_options.get(key)
        if v is not None:
            return v
        default = mapping.get(key)
        if default is None:
            return self.allowed_meta.get(key)
        return default

    def _all(self, mapping: Mapping[str, Optional[str]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in dict.fromkeys([*mapping, *BUILTIN_ARGS]):
            v = self._get(key, mapping)
            if v is not None:
                out[key] = v
        return out

    def get_all_allowed(self) -> dict[str, str]:
        """Declared ARGs with a value (option, default, or meta value) plus
        the proxy args given as options."""
        return self._all(self.allowed)

    def get_all_meta(self) -> dict[str, str]:
        return self._all(self.allowed_meta)

    def filter_allowed(self, env: Iterable[str]) -> list[str]:
        """`K=v` for each allowed arg the config's Env does not set."""
        set_in_env = env_from_list(env)
        return [f"{k}={v}" for k, v in sorted(self.get_all_allowed().items())
                if k not in set_in_env]

    def expansion_env(self, env: Iterable[str]) -> dict[str, str]:
        """What a step's words expand with: the config's Env, then the allowed
        args it does not override."""
        env = list(env)
        return env_from_list([*env, *self.filter_allowed(env)])

    def run_cmd_prefix(self, env: Iterable[str]) -> list[str]:
        """What a RUN's cache key and history put before the command: `|N`
        and the sorted `K=v` of the allowed args the Env does not set, the
        unreferenced proxy builtins left out of the list but not of the
        decision (dockerd writes `|0` then); [] with no such args."""
        allowed = self.filter_allowed(env)
        if not allowed:
            return []
        kept = sorted(a for a in allowed if self.is_referenced_or_not_builtin(a.partition("=")[0]))
        return [f"|{len(kept)}", *kept]

    def unused(self) -> list[str]:
        return sorted(k for k in self.from_options
                      if k not in BUILTIN_ARGS and k not in self.referenced)

    def unused_warning(self) -> str:
        """`[Warning] One or more build-args [a b] were not consumed\\n`, or ""."""
        left = self.unused()
        if not left:
            return ""
        return f"[Warning] One or more build-args [{' '.join(left)}] were not consumed\n"

