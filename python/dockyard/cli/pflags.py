"""A pflag-style parser for commands with docker's many-flag interfaces
(`service create/update`, `stack deploy`): flags given by table, values
checked as docker's flag types check them, the set of flags given ("changed"),
and cobra's messages and exit codes for usage errors (125 for a bad flag,
1 for the wrong number of arguments)."""

from __future__ import annotations

import sys
from typing import Any, Callable, NoReturn


class UsageError(Exception):
    """A bad flag or value: printed with `See '<prog> --help'.`, exit 125."""


# (names, key, kind, help); kind: "b" bool, "s" string, "l" repeated, or a
# callable (value, flag name as pflag shows it) -> parsed value, for "l" lists
# of parsed values use ("l", callable).
Flag = tuple[tuple[str, ...], str, Any, str]


def flag_display(names: tuple[str, ...]) -> str:
    """pflag's name for a flag in messages: "-e, --env" or "--name"."""
    short = [n for n in names if not n.startswith("--")]
    long = [n for n in names if n.startswith("--")]
    return ", ".join(short + long)


def parse_bool(v: str, flag: str) -> bool:
    lv = v.lower()
    if lv in ("1", "t", "true"):
        return True
    if lv in ("0", "f", "false"):
        return False
    raise UsageError(f'invalid argument "{v}" for "{flag}" flag: strconv.ParseBool: parsing '
                     f'"{v}": invalid syntax')


class Parsed:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.changed: set[str] = set()
        self.args: list[str] = []
        self.help = False

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def parse(argv: list[str], flags: list[Flag], interspersed: bool = True) -> Parsed:
    spec: dict[str, Flag] = {n: f for f in flags for n in f[0]}
    p = Parsed()
    for names, key, kind, _ in flags:
        if kind == "b":
            p.values.setdefault(key, False)
        elif kind == "l" or isinstance(kind, tuple):
            p.values.setdefault(key, [])
        else:
            p.values.setdefault(key, None)

    def put(f: Flag, name: str, val: Any) -> None:
        names, key, kind, _ = f
        shown = flag_display(names)
        p.changed.add(key)
        if kind == "b":
            p.values[key] = parse_bool(val, shown) if isinstance(val, str) else val
        elif kind == "l":
            p.values[key].append(val)
        elif isinstance(kind, tuple):
            p.values[key].append(_checked(kind[1], val, shown))
        elif kind == "s":
            p.values[key] = val
        else:
            p.values[key] = _checked(kind, val, shown)

    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            p.args += argv[i + 1:]
            break
        if not a.startswith("-") or a == "-":
            if not interspersed:
                p.args += argv[i:]
                break
            p.args.append(a)
            i += 1
            continue
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if name == "--help":
                p.help = True
                i += 1
                continue
            f = spec.get(name)
            if f is None:
                raise UsageError(f"unknown flag: {name}")
            if f[2] == "b":
                put(f, name, val if eq else True)
            else:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: {name}")
                    val = argv[i]
                put(f, name, val)
            i += 1
            continue
        j = 1
        while j < len(a):
            c = a[j]
            f = spec.get("-" + c)
            if f is None:
                raise UsageError(f"unknown shorthand flag: '{c}' in {a}")
            rest = a[j + 1:]
            if f[2] == "b":
                if rest.startswith("="):
                    put(f, "-" + c, rest[1:])
                    break
                put(f, "-" + c, True)
                j += 1
                continue
            if rest:
                val = rest[1:] if rest.startswith("=") else rest
            else:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: '{c}' in -{c}")
                val = argv[i]
            put(f, "-" + c, val)
            break
        i += 1
    return p


def _checked(conv: Callable[[str], Any], val: str, shown: str) -> Any:
    try:
        return conv(val)
    except ValueError as e:
        raise UsageError(f'invalid argument "{val}" for "{shown}" flag: {e}') from None


class Command:
    """One command's usage for cobra's messages."""

    def __init__(self, path: str, use: str, short: str, flags: list[Flag],
                 args: tuple[str, int] = ("min", 0), interspersed: bool = True) -> None:
        self.path, self.use, self.short, self.flags = path, use, short, flags
        self.args, self.interspersed = args, interspersed

    @property
    def prog(self) -> str:
        return "dockyard " + self.path

    def fail_usage(self, msg: str) -> NoReturn:
        print(f"{msg}\nSee '{self.prog} --help'.", file=sys.stderr)
        raise SystemExit(125)

    def fail_args(self, msg: str) -> NoReturn:
        print(f"{msg}\nSee '{self.prog} --help'.\n\nUsage:  {self.usage_line()}\n\n"
              f"{self.short}", file=sys.stderr)
        raise SystemExit(1)

    def usage_line(self) -> str:
        parent = self.path.rsplit(" ", 1)[0] if " " in self.path else ""
        return " ".join(x for x in ("dockyard", parent, self.use) if x)

    def parse(self, argv: list[str]) -> Parsed:
        try:
            p = parse(argv, self.flags, self.interspersed)
        except UsageError as e:
            self.fail_usage(str(e))
        if p.help:
            self.print_help()
            raise SystemExit(0)
        kind, n = self.args
        word = "argument" if n == 1 else "arguments"
        if kind == "min" and len(p.args) < n:
            self.fail_args(f'"{self.prog}" requires at least {n} {word}.')
        if kind == "exact" and len(p.args) != n:
            self.fail_args(f'"{self.prog}" requires exactly {n} {word}.')
        if kind == "none" and p.args:
            self.fail_args(f'"{self.prog}" accepts no arguments.')
        return p

    def print_help(self) -> None:
        out = [f"\nUsage:  {self.usage_line()}\n", f"{self.short}\n", "Options:"]
        rows = []
        for names, _, kind, help in self.flags:
            shown = flag_display(names)
            shown = shown if not shown.startswith("--") else "    " + shown
            rows.append((shown + ("" if kind == "b" else " value"), help))
        width = max((len(r[0]) for r in rows), default=0)
        out += [f"  {a:<{width}}   {h}" for a, h in rows]
        sys.stdout.write("\n".join(out) + "\n")
