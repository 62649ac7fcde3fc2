"""Dockerfiles as Docker 20.10's classic builder reads them: the line parser
(`parser`), shell-word expansion (`shell`), typed instructions
(`instructions`) and the stage model with build-arg scoping (`stages`).

The executor's entry points: `load(bytes, name)` -> `Dockerfile`, then per
step `BuildArgs.expansion_env(config_env)`, `Dockerfile.lex()` and each
instruction's `expand(...)`.
"""

from .instructions import (
    AddInstruction, AnyInstruction, ArgDef, ArgInstruction, BFlags, CmdInstruction,
    CopyInstruction, EntrypointInstruction, EnvInstruction, ExposeInstruction,
    FromInstruction, HealthConfig, HealthcheckInstruction, Instruction, KeyValue,
    LabelInstruction, MaintainerInstruction, Mount, OnbuildInstruction, RunInstruction,
    ShellInstruction, SourceContent, StopsignalInstruction, UnknownInstruction,
    UserInstruction, VolumeInstruction, WorkdirInstruction, format_go_duration, go_duration,
    parse_instruction, parse_mount,
)
from .parser import DockerfileParseError, Heredoc, Node, ParseResult, parse
from .shell import Lex, ShellError, env_from_list
from .stages import BUILTIN_ARGS, BuildArgs, Dockerfile, Stage, load, parse_trigger

__all__ = [
    "AddInstruction", "AnyInstruction", "ArgDef", "ArgInstruction", "BFlags", "BUILTIN_ARGS",
    "BuildArgs", "CmdInstruction", "CopyInstruction", "Dockerfile", "DockerfileParseError",
    "EntrypointInstruction", "EnvInstruction", "ExposeInstruction", "FromInstruction",
    "HealthConfig", "HealthcheckInstruction", "Heredoc", "Instruction", "KeyValue",
    "LabelInstruction", "Lex", "MaintainerInstruction", "Mount", "Node",
    "OnbuildInstruction", "ParseResult", "RunInstruction", "ShellError", "ShellInstruction",
    "SourceContent", "Stage", "StopsignalInstruction", "UnknownInstruction",
    "UserInstruction", "VolumeInstruction", "WorkdirInstruction", "env_from_list",
    "format_go_duration", "go_duration", "load", "parse", "parse_instruction", "parse_mount",
    "parse_trigger",
]
