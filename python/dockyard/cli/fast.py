"""Commands that must start fast run here without loading Typer.

Typer (and the pydantic it imports) costs ~80 ms before a command runs, more
than the whole budget of `dockyard version`. `main()` parses the global
options and these commands' few flags by hand, and hands anything else
(`--help`, an unknown flag, every other command) to the Typer app.
"""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any, Callable

from .common import G, check_host_and_context, client

# option -> (Globals attribute, takes a value)
GLOBAL_OPTS = {
    "-H": ("host", True), "--host": ("host", True), "-c": ("context", True),
    "--context": ("context", True), "--tls": ("tls", False),
    "--tlsverify": ("tlsverify", False), "--tlscacert": ("tlscacert", True),
    "--tlscert": ("tlscert", True), "--tlskey": ("tlskey", True),
    "-D": ("debug", False), "--debug": ("debug", False), "-l": (None, True),
    "--log-level": (None, True),
}


def _split(arg: str) -> tuple[str, str | None]:
    if arg.startswith("--") and "=" in arg:
        k, v = arg.split("=", 1)
        return k, v
    return arg, None


def parse_globals(argv: list[str]) -> int | None:
    """Apply the global options in front of the command; returns the index of
    the command, or None when something needs Typer's parser."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-"):
            return i
        k, v = _split(a)
        spec = GLOBAL_OPTS.get(k)
        if spec is None:
            return None
        attr, takes = spec
        if takes:
            if v is None:
                i += 1
                if i >= len(argv):
                    return None
                v = argv[i]
            if attr:
                setattr(G, attr, v)
        elif attr:
            setattr(G, attr, True)
        i += 1
    return None


def parse_options(args: list[str], spec: dict[str, tuple[str, str]],
                  positional: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """pflag's parse of `args` by `spec` (spelling -> keyword name, kind:
    "bool", "str" (the last one given wins), "int" or "list"), short flags in
    clusters (`-aq`, `-qn3`, `-qn 3`), arguments anywhere, to the keyword
    names `positional` in order. None for anything else (an argument too
    many, an unknown flag, `--all=x`, a bad number): Typer says what is wrong."""
    out: dict[str, Any] = {}
    names = list(positional)
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or not a.startswith("-") or a == "-":
            if a == "--" or not names:
                return None
            out[names.pop(0)] = a
            i += 1
            continue
        if a.startswith("--"):
            k, v = _split(a)
            flags = [(k, v)]
        else:
            flags = []
            for j, ch in enumerate(a[1:], 2):
                entry = spec.get("-" + ch)
                if entry is None:
                    return None
                if entry[1] != "bool":  # takes the rest of the cluster, or the next argument
                    flags.append(("-" + ch, a[j:] or None))
                    break
                flags.append(("-" + ch, None))
        for k, v in flags:
            entry = spec.get(k)
            if entry is None:
                return None
            name, kind = entry
            if kind == "bool":
                if v is not None:
                    return None
                out[name] = True
                continue
            if v is None:
                i += 1
                if i >= len(args):
                    return None
                v = args[i]
            if kind == "int":
                if not v.lstrip("-").isdigit():
                    return None
                out[name] = int(v)
            elif kind == "list":
                out.setdefault(name, []).append(v)
            else:
                out[name] = v
        i += 1
    return out


def client_version() -> dict[str, Any]:
    from .. import __version__
    from .client import API_VERSION
    from .common import current_context

    return {"Platform": {"Name": "Dockyard"}, "Version": __version__, "ApiVersion": API_VERSION,
            "DefaultAPIVersion": API_VERSION, "GitCommit": "dockyard",
            "GoVersion": "python" + ".".join(map(str, sys.version_info[:3])), "Os": "linux",
            "Arch": "amd64", "BuildTime": "", "Context": current_context()}


def show_version(format: str | None) -> None:
    from .client import APIError, ConnectError

    cv = client_version()
    server = None
    err = None
    try:
        server = client().get_json("/version")
    except (APIError, ConnectError) as e:
        err = str(e)
    if format:
        from .output import print_one

        print_one(format, {"Client": cv, "Server": server}, name="version")
        if err:
            print(err, file=sys.stderr)
            raise SystemExit(1)
        return
    out = [f"Client: {cv['Platform']['Name']}",
           f" Version:           {cv['Version']}",
           f" API version:       {cv['ApiVersion']}",
           f" Go version:        {cv['GoVersion']}",
           f" Git commit:        {cv['GitCommit']}",
           f" Built:             {cv['BuildTime']}",
           f" OS/Arch:           {cv['Os']}/{cv['Arch']}",
           f" Context:           {cv['Context']}"]
    if server:
        name = (server.get("Platform") or {}).get("Name", "")
        out += ["", f"Server:{' ' + name if name else ''}"]
        for comp in server.get("Components") or []:
            d = comp.get("Details") or {}
            out.append(f" {comp['Name']}:")
            if comp["Name"] == "Engine":
                out += [f"  Version:          {comp['Version']}",
                        f"  API version:      {d.get('ApiVersion')} (minimum version "
                        f"{d.get('MinAPIVersion')})",
                        f"  Go version:       {d.get('GoVersion')}",
                        f"  Git commit:       {d.get('GitCommit')}",
                        f"  Built:            {d.get('BuildTime')}",
                        f"  OS/Arch:          {d.get('Os')}/{d.get('Arch')}",
                        f"  Experimental:     {d.get('Experimental')}"]
            else:
                out.append(f"  Version:          {comp['Version']}")
                for k, v in d.items():
                    out.append(f"  {k}:{' ' * max(16 - len(k), 1)}{v}")
    sys.stdout.write("\n".join(out) + "\n")
    if err:
        print(err, file=sys.stderr)
        raise SystemExit(1)


def show_containers(**kw: Any) -> None:
    from .pslist import list_containers

    list_containers(**kw)


def show_images(**kw: Any) -> None:
    from .imagelist import list_images_of

    list_images_of(**kw)


# command -> (function, its flags for parse_options, their defaults, its arguments)
FAST: dict[str, tuple[Callable[..., None], dict[str, tuple[str, str]], dict[str, Any],
                      tuple[str, ...]]] = {
    "version": (show_version, {"-f": ("format", "str"), "--format": ("format", "str")},
                {"format": None}, ()),
    "ps": (show_containers,
           {"-a": ("all", "bool"), "--all": ("all", "bool"), "-f": ("filter", "list"),
            "--filter": ("filter", "list"), "--format": ("format", "str"),
            "-n": ("last", "int"), "--last": ("last", "int"), "-l": ("latest", "bool"),
            "--latest": ("latest", "bool"), "--no-trunc": ("no_trunc", "bool"),
            "-q": ("quiet", "bool"), "--quiet": ("quiet", "bool"), "-s": ("size", "bool"),
            "--size": ("size", "bool")},
           {"all": False, "filter": None, "format": None, "last": -1, "latest": False,
            "no_trunc": False, "quiet": False, "size": False}, ()),
    "images": (show_images,
               {"-a": ("all", "bool"), "--all": ("all", "bool"), "-q": ("quiet", "bool"),
                "--quiet": ("quiet", "bool"), "--no-trunc": ("no_trunc", "bool"),
                "--digests": ("digests", "bool"), "-f": ("filter", "list"),
                "--filter": ("filter", "list"), "--format": ("format", "str")},
               {"repository": None, "all": False, "quiet": False, "no_trunc": False,
                "digests": False, "filter": None, "format": None}, ("repository",)),
}
# group commands the same as a FAST one
FAST_GROUPED = {("container", "ls"): "ps", ("container", "ps"): "ps",
                ("container", "list"): "ps", ("image", "ls"): "images",
                ("image", "list"): "images"}


class FastExit(SystemExit):
    """The end of a fast `run`/`create`: nothing is left to tear down, so
    the launcher may skip the interpreter's finalization (1-2 ms)."""


def _run_or_create(args: list[str], cmd: str) -> bool:
    """`run`/`create` without Typer (runflags.py, runflow.py); --help goes to Typer."""
    from . import runflags, runflow

    try:
        runflags.parse_args(args, cmd)
    except runflags.UsageError:
        if "--help" in args[:args.index("--") if "--" in args else len(args)]:
            return False
    code = runflow.run_run(args) if cmd == "run" else runflow.run_create(args)
    sys.stdout.flush()
    raise FastExit(code)


# pull/push: the flags each takes ("" = no value), all else goes to Typer.
TRANSFER_FLAGS = {
    "pull": {"-a": "all_tags", "--all-tags": "all_tags", "-q": "quiet", "--quiet": "quiet",
             "--disable-content-trust": "", "--platform": "=platform"},
    "push": {"-a": "all_tags", "--all-tags": "all_tags", "-q": "quiet", "--quiet": "quiet",
             "--disable-content-trust": ""},
}


def _transfer(cmd: str, args: list[str]) -> bool:
    """`pull`/`push` NAME with their flags, skipping Typer's ~200 ms of set-up."""
    spec = TRANSFER_FLAGS[cmd]
    kw: dict[str, Any] = {}
    names: list[str] = []
    i = 0
    while i < len(args):
        k, v = _split(args[i])
        if not k.startswith("-") or k == "-":
            names.append(args[i])
        elif k not in spec:
            return False
        elif spec[k].startswith("="):
            if v is None:
                i += 1
                if i >= len(args):
                    return False
                v = args[i]
            kw[spec[k][1:]] = v
        elif spec[k]:
            if v is not None and v.lower() not in ("true", "1"):
                return False
            kw[spec[k]] = True
        i += 1
    if len(names) != 1:
        return False
    from . import transfer

    getattr(transfer, cmd)(names[0], **kw)
    return True


def version_line() -> str:
    """`docker --version`'s one line, for this client."""
    cv = client_version()
    return f"Dockyard version {cv['Version']}, build {cv['GitCommit']}"


def try_fast(argv: list[str]) -> bool:
    """Run argv here if it is a fast command; False hands it to Typer."""
    if argv[:1] in (["-v"], ["--version"]):  # as docker: no daemon asked
        print(version_line())
        return True
    i = parse_globals(argv)
    if i is not None:
        check_host_and_context()
    if i is not None and argv[i] in ("run", "create"):
        return _run_or_create(argv[i + 1:], argv[i])
    if (i is not None and argv[i] == "container" and i + 1 < len(argv)
            and argv[i + 1] in ("run", "create")):
        return _run_or_create(argv[i + 2:], argv[i + 1])
    if any(a in ("--help", "-h") for a in argv):
        return False
    if i is not None and argv[i] in TRANSFER_FLAGS:
        return _transfer(argv[i], argv[i + 1:])
    if i is None:
        return False
    cmd, rest = argv[i], argv[i + 1:]
    if i + 1 < len(argv) and (cmd, argv[i + 1]) in FAST_GROUPED:
        cmd, rest = FAST_GROUPED[(cmd, argv[i + 1])], argv[i + 2:]
    if cmd not in FAST:
        return False
    fn, spec, defaults, positional = FAST[cmd]
    opts = parse_options(rest, spec, positional)
    if opts is None:
        return False
    fn(**{**defaults, **opts})
    return True
