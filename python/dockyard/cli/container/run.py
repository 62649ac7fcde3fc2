"""`run` and `create` as Typer commands: their options are generated from
runflags.FLAGS, and they hand the parsed options to runflow, as the fast path
(cli/fast.py) does without Typer."""

from __future__ import annotations

import inspect
from typing import Any, Callable, List, Optional

import typer

from .. import runflags, runflow


def _flag_command(cmd: str) -> Callable[..., None]:
    """The Typer command for `run` or `create`, one option per runflags.FLAGS row."""
    P = inspect.Parameter
    params = [
        P("image", P.KEYWORD_ONLY, default=typer.Argument(..., metavar="IMAGE"),
          annotation=str),
        P("command", P.KEYWORD_ONLY, default=typer.Argument(None, metavar="[COMMAND] [ARG...]"),
          annotation=Optional[List[str]]),
    ]
    kinds = {}
    for spellings, key, kind, help in runflags.FLAGS:
        if cmd != "run" and key in runflags.RUN_ONLY:
            continue
        if key == "sig_proxy":
            kind = "s"
        kinds[key] = kind
        if kind == "b":
            params.append(P(key, P.KEYWORD_ONLY, annotation=bool,
                            default=typer.Option(False, *spellings, help=help)))
        elif kind == "s":
            params.append(P(key, P.KEYWORD_ONLY, annotation=Optional[str],
                            default=typer.Option(None, *spellings, help=help, metavar="string")))
        else:
            params.append(P(key, P.KEYWORD_ONLY, annotation=Optional[List[str]],
                            default=typer.Option(None, *spellings, help=help, metavar="list")))

    def command(**kw: Any) -> None:
        image, args = kw.pop("image"), list(kw.pop("command") or [])
        opts = runflags.defaults(cmd)
        changed = set()
        for k, v in kw.items():
            if kinds[k] == "l":
                v = list(v or [])
            if k == "sig_proxy":
                if v is None:
                    continue
                v = v.lower() in ("1", "t", "true")
            if v not in (None, False, []):
                changed.add(k)
                opts[k] = v
        fn = runflow.run_parsed if cmd == "run" else runflow.create_parsed
        raise SystemExit(fn(opts, changed, image, args))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = ("Run a command in a new container" if cmd == "run" else
                       "Create a new container")
    command.__name__ = cmd
    return command


# flags stop at the image: what follows it is the command
FLAG_CTX = {"allow_interspersed_args": False}
run = _flag_command("run")
create = _flag_command("create")
