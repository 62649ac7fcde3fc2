"""The `build` command group: `dockyard build` (also `image build`, `builder
build`) and `builder prune`, as docker/cli 20.10 runs them with the classic
builder (DOCKER_BUILDKIT=0): the same flags and messages, the context tarred
client-side (buildcontext.py) and sent as the body of `POST /build` with the
query docker sends, and the JSON stream shown as jsonmessage shows it.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable, Iterator, List, Optional

import typer

from .buildcontext import ContextError
from .opts import RAW

# (spellings, key, kind, help). Kinds: b bool, s string, l repeatable, c comma
# list (pflag StringSlice), i int64, m memory size, w memory+swap size, u ulimit.
FLAGS: list[tuple[tuple[str, ...], str, str, str]] = [
    (("--add-host",), "add_host", "l", "Add a custom host-to-IP mapping (host:ip)"),
    (("--build-arg",), "build_arg", "l", "Set build-time variables"),
    (("--cache-from",), "cache_from", "c", "Images to consider as cache sources"),
    (("--cgroup-parent",), "cgroup_parent", "s", "Optional parent cgroup for the container"),
    (("--compress",), "compress", "b", "Compress the build context using gzip"),
    (("--cpu-period",), "cpu_period", "i",
     "Limit the CPU CFS (Completely Fair Scheduler) period"),
    (("--cpu-quota",), "cpu_quota", "i", "Limit the CPU CFS (Completely Fair Scheduler) quota"),
    (("-c", "--cpu-shares"), "cpu_shares", "i", "CPU shares (relative weight)"),
    (("--cpuset-cpus",), "cpuset_cpus", "s", "CPUs in which to allow execution (0-3, 0,1)"),
    (("--cpuset-mems",), "cpuset_mems", "s", "MEMs in which to allow execution (0-3, 0,1)"),
    (("--disable-content-trust",), "disable_content_trust", "b",
     "Skip image verification (default true)"),
    (("-f", "--file"), "file", "s", "Name of the Dockerfile (Default is 'PATH/Dockerfile')"),
    (("--force-rm",), "force_rm", "b", "Always remove intermediate containers"),
    (("--iidfile",), "iidfile", "s", "Write the image ID to the file"),
    (("--isolation",), "isolation", "s", "Container isolation technology"),
    (("--label",), "label", "l", "Set metadata for an image"),
    (("-m", "--memory"), "memory", "m", "Memory limit"),
    (("--memory-swap",), "memory_swap", "w",
     "Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    (("--network",), "network", "s",
     "Set the networking mode for the RUN instructions during build (default \"default\")"),
    (("--no-cache",), "no_cache", "b", "Do not use cache when building the image"),
    (("-o", "--output"), "output", "l", "Output destination (format: type=local,dest=path)"),
    (("--platform",), "platform", "s", "Set platform if server is multi-platform capable"),
    (("--progress",), "progress", "s",
     "Set type of progress output (auto, plain, tty). Use plain to show container output "
     "(default \"auto\")"),
    (("--pull",), "pull", "b", "Always attempt to pull a newer version of the image"),
    (("-q", "--quiet"), "quiet", "b",
     "Suppress the build output and print image ID on success"),
    (("--rm",), "rm", "b",
     "Remove intermediate containers after a successful build (default true)"),
    (("--secret",), "secret", "l",
     "Secret file to expose to the build (only if BuildKit enabled): "
     "id=mysecret,src=/local/secret"),
    (("--security-opt",), "security_opt", "c", "Security options"),
    (("--shm-size",), "shm_size", "m", "Size of /dev/shm"),
    (("--squash",), "squash", "b", "Squash newly built layers into a single new layer"),
    (("--ssh",), "ssh", "l",
     "SSH agent socket or keys to expose to the build (only if BuildKit enabled) "
     "(format: default|<id>[=<socket>|<key>[,<key>]])"),
    (("--stream",), "stream", "b", ""),
    (("-t", "--tag"), "tag", "l", "Name and optionally a tag in the 'name:tag' format"),
    (("--target",), "target", "s", "Set the target build stage to build."),
    (("--ulimit",), "ulimit", "u", "Ulimit options (default [])"),
]
SPEC: dict[str, tuple[str, str, str]] = {
    s: (key, kind, ", ".join(sp)) for sp, key, kind, _ in FLAGS for s in sp}

ULIMIT_NAMES = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}
STDIN_CONFLICT = "invalid argument: can't use stdin for both build context and dockerfile"
SENDING = "Sending build context to Docker daemon"


class UsageError(Exception):
    """A bad flag or value: exit 125 with `See '<prog> --help'.`"""


class Failure(Exception):
    """A failed build: the message for stderr (may be empty) and the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def defaults() -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _, key, kind, _ in FLAGS:
        d[key] = False if kind == "b" else [] if kind in "lcu" else 0 if kind in "imw" else ""
    d["rm"] = True
    d["disable_content_trust"] = True
    d["network"] = "default"
    d["progress"] = "auto"
    d["platform"] = os.environ.get("DOCKER_DEFAULT_PLATFORM", "")
    return d


# -- flag values, as docker/cli's opts validate them --------------------------------------

def _go_bool(v: str) -> bool | None:
    if v in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if v in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def _int64(v: str) -> int:
    import re

    if not re.fullmatch(r"[+-]?\d+", v):
        raise ValueError(f'strconv.ParseInt: parsing "{v}": invalid syntax')
    n = int(v)
    if not -(1 << 63) <= n < (1 << 63):
        raise ValueError(f'strconv.ParseInt: parsing "{v}": value out of range')
    return n


def _ram(v: str) -> int:
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?", v)
    if not m:
        raise ValueError(f"invalid size: '{v}'")
    try:
        num = float(m.group(1))
    except ValueError:
        raise ValueError(f"invalid size: '{v}'") from None
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    return int(num * mult[(m.group(2) or "").lower()])


def _ulimit(v: str) -> dict[str, Any]:
    """units.ParseUlimit."""
    name, eq, limits = v.partition("=")
    if not eq:
        raise ValueError(f"invalid ulimit argument: {v}")
    if name not in ULIMIT_NAMES:
        raise ValueError(f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise ValueError(f"too many limit value arguments - {limits}, can only have up to "
                         "two, `soft[:hard]`")
    soft = _int64(parts[0])
    hard = _int64(parts[1]) if len(parts) == 2 else soft
    if hard != -1 and soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: "
                         f"{soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def _tag(v: str) -> str:
    from .. import reference
    from ..errors import InvalidReference

    try:
        reference.parse_normalized(v)
    except InvalidReference as e:
        msg = str(e)
        if msg.endswith("must be lowercase"):  # the 20.10 CLI's words
            msg = "invalid reference format: repository name must be lowercase"
        raise ValueError(msg) from None
    return v


def _build_arg(v: str) -> str:
    """opts.ValidateEnv: a bare NAME takes its value from our environment."""
    name, eq, _ = v.partition("=")
    if name == "":
        raise ValueError("invalid environment variable: " + v)
    if not eq and name in os.environ:
        return f"{name}={os.environ[name]}"
    return v


def _label(v: str) -> str:
    key = v.split("=", 1)[0].lstrip(" \t")
    if key == "":
        raise ValueError(f"invalid label '{v}': empty name")
    if any(c in key for c in " \t"):
        raise ValueError(f"label '{key}' contains whitespaces")
    return v


def _extra_host(v: str) -> str:
    import ipaddress

    host, colon, ip = v.partition(":")
    if not colon or not host:
        raise ValueError(f'bad format for add-host: "{v}"')
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError(f'invalid IP address in add-host: "{ip}"') from None
    return v


def _csv(v: str) -> list[str]:
    import csv

    if v == "":
        return []
    try:
        return next(csv.reader([v]))
    except (csv.Error, StopIteration) as e:
        raise ValueError(str(e)) from None


VALIDATORS: dict[str, Callable[[str], Any]] = {
    "tag": _tag, "build_arg": _build_arg, "label": _label, "add_host": _extra_host,
}


def parse_args(argv: list[str]) -> tuple[dict[str, Any], list[str], bool]:
    """pflag with interspersed arguments: (options, positional args, --help)."""
    opts = defaults()
    args: list[str] = []
    want_help = False

    def put(spelled: str, key: str, kind: str, display: str, v: Any) -> None:
        try:
            if kind == "b":
                opts[key] = v
            elif kind == "s":
                opts[key] = v
            elif kind == "l":
                opts[key].append(VALIDATORS[key](v) if key in VALIDATORS else v)
            elif kind == "c":
                opts[key].extend(_csv(v))
            elif kind == "i":
                opts[key] = _int64(v)
            elif kind == "m":
                opts[key] = _ram(v)
            elif kind == "w":
                opts[key] = -1 if v == "-1" else _ram(v)
            elif kind == "u":
                lim = _ulimit(v)
                opts[key] = [u for u in opts[key] if u["Name"] != lim["Name"]] + [lim]
        except ValueError as e:
            raise UsageError(f'invalid argument "{v}" for "{display}" flag: {e}') from None

    def bool_value(v: str, display: str) -> bool:
        b = _go_bool(v)
        if b is None:
            raise UsageError(f'invalid argument "{v}" for "{display}" flag: '
                             f'strconv.ParseBool: parsing "{v}": invalid syntax')
        return b

    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            args.extend(argv[i:])
            break
        if not a.startswith("-") or a == "-":
            args.append(a)
            continue
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if name == "--help":
                want_help = True
                continue
            spec = SPEC.get(name)
            if spec is None:
                raise UsageError(f"unknown flag: {name}")
            key, kind, display = spec
            if kind == "b":
                put(name, key, kind, display, bool_value(val, display) if eq else True)
                continue
            if not eq:
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: {name}")
                val = argv[i]
                i += 1
            put(name, key, kind, display, val)
            continue
        j = 1
        while j < len(a):
            c = a[j]
            spec = SPEC.get("-" + c)
            if spec is None:
                if c == "h":
                    want_help = True
                    j += 1
                    continue
                raise UsageError(f"unknown shorthand flag: '{c}' in {a}")
            key, kind, display = spec
            rest = a[j + 1:]
            if kind == "b":
                if rest.startswith("="):
                    put("-" + c, key, kind, display, bool_value(rest[1:], display))
                    break
                put("-" + c, key, kind, display, True)
                j += 1
                continue
            if rest:
                val = rest[1:] if rest.startswith("=") else rest
            else:
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: '{c}' in -{c}")
                val = argv[i]
                i += 1
            put("-" + c, key, kind, display, val)
            break
    return opts, args, want_help


# Flags docker 20.10 hides from `build --help` with the classic builder
# (BuildKit's, and the removed --stream); they are still accepted.
HIDDEN = {"output", "platform", "progress", "secret", "ssh", "stream"}


def _wrap_n(i: int, slop: int, s: str) -> tuple[str, str]:
    if i + slop > len(s):
        return s, ""
    w = max(s.rfind(c, 0, i) for c in " \t\n")
    if w <= 0:
        return s, ""
    nl = s.rfind("\n", 0, i)
    if 0 < nl < w:
        return s[:nl], s[nl + 1:]
    return s[:w], s[w + 1:]


def _wrap(i: int, w: int, s: str) -> str:
    """pflag's wrap: `s` in a column from `i` to `w`."""
    width = w - i
    r = ""
    if width < 24:
        i, width = 16, w - 16
        r = "\n" + " " * i
    if width < 24:
        return s.replace("\n", r)
    width -= 5
    line, s = _wrap_n(width, 5, s)
    r += line.replace("\n", "\n" + " " * i)
    while s:
        line, s = _wrap_n(width, 5, s)
        r += "\n" + " " * i + line.replace("\n", "\n" + " " * i)
    return r


def usage(prog: str) -> str:
    """docker's help for the command: cobra's template with pflag's
    FlagUsagesWrapped at the terminal's width less one (79 off a terminal)."""
    import shutil

    cols = (shutil.get_terminal_size((80, 24)).columns if sys.stdin.isatty() else 80) - 1
    kinds = {"b": "", "s": " string", "l": " list", "c": " strings", "i": " int",
             "m": " bytes", "w": " bytes", "u": " ulimit"}
    lines = []
    from .common import daemon_experimental

    hidden = HIDDEN | ({"squash"} if daemon_experimental() is False else set())
    for spellings, key, kind, help in FLAGS:
        if key in hidden:
            continue
        short = next((sp for sp in spellings if len(sp) == 2), None)
        long = next(sp for sp in spellings if sp.startswith("--"))
        lines.append(((f"  {short}, " if short else "      ") + long + kinds[kind], help))
    maxlen = max(len(left) for left, _ in lines) + 1  # pflag counts its \x00 marker
    body = "".join(f"{left} {' ' * (maxlen - len(left))} {_wrap(maxlen + 2, cols, help)}\n"
                   for left, help in lines)
    return (f"\nUsage:  {prog} [OPTIONS] PATH | URL | -\n\nBuild an image from a Dockerfile\n"
            f"\nOptions:\n{body}")


# -- the request --------------------------------------------------------------------------

def go_json(value: Any, sort_keys: bool = True) -> str:
    """encoding/json.Marshal: compact, map keys sorted (a struct's fields,
    sort_keys=False, keep their order), <>& and U+2028/9 escaped, other text
    as UTF-8."""
    import json

    s = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                 ("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\\b", "\\u0008"),
                 ("\\f", "\\u000c")):
        s = s.replace(a, b)
    return s


def _proxy_args(build_args: dict[str, str | None], host: str) -> dict[str, str | None]:
    """configfile.ParseProxyConfig: the `proxies` of the client config, for
    this daemon or `default`, fill the proxy build args not given."""
    import json

    from ..distribution.credentials import docker_config_dir, dockyard_config_dir

    proxies: dict[str, Any] = {}
    for d in (docker_config_dir(), dockyard_config_dir()):
        try:
            with open(d / "config.json") as f:
                proxies.update((json.load(f) or {}).get("proxies") or {})
        except (OSError, ValueError, AttributeError):
            continue
    cfg = proxies.get(host) if host in proxies else proxies.get("default")
    if not isinstance(cfg, dict):
        return build_args
    for key, field in (("HTTP_PROXY", "httpProxy"), ("HTTPS_PROXY", "httpsProxy"),
                       ("NO_PROXY", "noProxy"), ("FTP_PROXY", "ftpProxy")):
        v = cfg.get(field) or ""
        if not v:
            continue
        build_args.setdefault(key, v)
        build_args.setdefault(key.lower(), v)
    return build_args


def build_query(o: dict[str, Any], dockerfile: str, host: str) -> dict[str, Any]:
    """client.imageBuildOptionsToQuery (20.10), keys in url.Values.Encode's
    sorted order."""
    build_args: dict[str, str | None] = {}
    for kv in o["build_arg"]:
        k, eq, v = kv.partition("=")
        build_args[k] = v if eq else None
    labels = {}
    for kv in o["label"]:
        k, _, v = kv.partition("=")
        labels[k] = v
    q: dict[str, Any] = {
        "t": o["tag"], "securityopt": o["security_opt"], "extrahosts": o["add_host"],
        "rm": "1" if o["rm"] else "0",
        "cpusetcpus": o["cpuset_cpus"], "networkmode": o["network"],
        "cpusetmems": o["cpuset_mems"], "cpushares": str(o["cpu_shares"]),
        "cpuquota": str(o["cpu_quota"]), "cpuperiod": str(o["cpu_period"]),
        "memory": str(o["memory"]), "memswap": str(o["memory_swap"]),
        "cgroupparent": o["cgroup_parent"], "shmsize": str(o["shm_size"]),
        "dockerfile": dockerfile, "target": o["target"],
        "ulimits": go_json(sorted(o["ulimit"], key=lambda u: u["Name"]) or None, sort_keys=False),
        "buildargs": go_json(_proxy_args(build_args, host)),
        "labels": go_json(labels), "cachefrom": go_json(o["cache_from"]), "version": "1",
    }
    if o["quiet"]:
        q["q"] = "1"
    if o["no_cache"]:
        q["nocache"] = "1"
    if o["force_rm"]:
        q["forcerm"] = "1"
    if o["pull"]:
        q["pull"] = "1"
    if o["squash"]:
        q["squash"] = "1"
    if o["isolation"] and o["isolation"].lower() != "default":
        q["isolation"] = o["isolation"]
    if o["platform"]:
        q["platform"] = o["platform"].lower()
    return {k: q[k] for k in sorted(q)}


def registry_config() -> str:
    """X-Registry-Config: every stored credential (GetAllCredentials), base64url JSON."""
    import base64

    from ..distribution.credentials import all_credentials

    auths = {}  # map keys sorted, each AuthConfig in its struct's field order
    for key, a in sorted(all_credentials().items()):
        auths[key] = {k: v for k, v in (
            ("username", a.username), ("password", a.password), ("auth", a.auth),
            ("email", a.email), ("serveraddress", a.serveraddress),
            ("identitytoken", a.identitytoken), ("registrytoken", a.registrytoken)) if v}
    text = "{" + ",".join(f"{go_json(k)}:{go_json(v, sort_keys=False)}"
                          for k, v in auths.items()) + "}"
    return base64.urlsafe_b64encode(text.encode()).decode()


# -- output -------------------------------------------------------------------------------

class Out:
    """A text sink over stdout's bytes (or a buffer for -q), keeping what the
    daemon sent byte for byte."""

    def __init__(self, buffered: bool) -> None:
        self.parts: list[bytes] | None = [] if buffered else None

    def write(self, s: str) -> None:
        data = s.encode("utf-8", "surrogateescape")
        if self.parts is not None:
            self.parts.append(data)
        else:
            sys.stdout.buffer.write(data)

    def flush(self) -> None:
        if self.parts is None:
            sys.stdout.buffer.flush()

    def fileno(self) -> int:
        return sys.stdout.fileno()

    def text(self) -> bytes:
        return b"".join(self.parts or [])


def _human(n: int) -> str:
    from ..units import human_size

    return f"{human_size(n):>8}"


def _with_progress(body: Iterable[bytes], out: Out, terminal: bool, final: bool = True
                   ) -> Iterator[bytes]:
    """progress.NewProgressReader over the context: on a terminal a line
    rewritten every 512 KiB (at most every 100 ms), else only the last
    (which docker never shows for a downloaded tar: `final` False)."""
    import time

    sent = last = 0
    shown = 0.0
    for chunk in _coalesce(body):
        sent += len(chunk)
        yield chunk
        if terminal and sent - last > 512 * 1024:
            last = sent
            now = time.monotonic()
            if now - shown >= 0.1:
                shown = now
                out.write(f"{SENDING} {_human(sent)}\r")
                out.flush()
    if final:
        out.write(f"{SENDING} {_human(sent)}\r\r\n")
        out.flush()


def _coalesce(chunks: Iterable[bytes], size: int = 1 << 18) -> Iterator[bytes]:
    """Headers and small files joined into writes of about `size` bytes (one
    HTTP chunk and one send each, not three per file)."""
    buf: list[bytes] = []
    n = 0
    for c in chunks:
        buf.append(c)
        n += len(c)
        if n >= size:
            yield b"".join(buf)
            buf, n = [], 0
    if buf:
        yield b"".join(buf)


# -- contexts other than a directory ------------------------------------------------------

def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def _is_git_url(s: str) -> bool:
    import re

    if _is_url(s) and re.search(r"\.git(?:#.+)?$", s):
        return True
    return s.startswith(("git://", "github.com/", "git@"))


def _git(args: list[str], cwd: str) -> tuple[bool, str]:
    import subprocess

    r = subprocess.run(["git", *args], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
    out = r.stdout.decode(errors="replace")
    return r.returncode == 0, out if r.returncode == 0 else f"{out}: exit status {r.returncode}"


def _shallow_ok(remote: str) -> bool:
    """supportsShallowClone: http(s) remotes only when they speak git's smart
    protocol; other transports always."""
    if not _is_url(remote):
        return True
    import urllib.request

    try:
        with urllib.request.urlopen(remote + "/info/refs?service=git-upload-pack",
                                    timeout=30) as r:  # noqa: S310 - the user's remote
            return r.headers.get("Content-Type", "") == \
                "application/x-git-upload-pack-advertisement"
    except (OSError, ValueError):
        return False


def clone_git_context(url: str) -> tuple[str, str]:
    """remotecontext/git.Clone: `url#ref:subdir` (ref `master` by default)
    fetched, shallow when the remote can, into a temporary directory and
    checked out; returns that directory and the context directory in it."""
    import shutil
    import tempfile

    if shutil.which("git") is None:
        raise ContextError('unable to find \'git\': exec: "git": executable file not found '
                           "in $PATH")
    if not url.startswith(("http://", "https://", "git://", "git@")):
        url = "https://" + url
    remote, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    ref = ref or "master"
    if ref.startswith("-"):
        raise ContextError(f"unable to 'git clone' to temporary context directory: "
                           f"invalid refspec: {ref}")
    root = tempfile.mkdtemp(prefix="docker-build-git")
    try:
        steps = [(["init"], f"failed to init repo at {root}"),
                 (["remote", "add", "origin", remote], f"failed add origin repo at {remote}"),
                 (["fetch", *(["--depth", "1"] if _shallow_ok(remote) else []), "origin",
                   "--", ref], "error fetching")]
        for args, what in steps:
            ok, out = _git(args, root)
            if not ok:
                raise ContextError(f"{what}: {out}")
        ok, out = _git(["checkout", ref], root)
        if not ok and not _git(["checkout", "FETCH_HEAD"], root)[0]:
            raise ContextError(f"error checking out {ref}: {out}")
        ctx = root
        if subdir:
            ctx = os.path.realpath(os.path.join(root, subdir))
            if not (ctx + "/").startswith(os.path.realpath(root) + "/"):
                raise ContextError(f'error setting git context, "{subdir}" not within git root')
            if not os.path.exists(ctx):
                raise ContextError(f"stat {ctx}: no such file or directory")
            if not os.path.isdir(ctx):
                raise ContextError(f"error setting git context, not a directory: {ctx}")
        ok, out = _git(["submodule", "update", "--init", "--recursive", "--depth=1"], root)
        if not ok:
            raise ContextError(f"error initializing submodules: {out}")
        return root, ctx
    except ContextError as e:
        shutil.rmtree(root, ignore_errors=True)
        raise ContextError(f"unable to 'git clone' to temporary context directory: {e}"
                           ) from None


def download_context(url: str, out: Out) -> bytes:
    """GetContextFromURL: the body of a GET (a tar or a Dockerfile), with
    docker's progress lines as a small body gives them: for a Dockerfile
    the full bar, then again as the last line; for a tar only the first
    (Go's readers see the end together with the data and never report it)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url) as r:  # noqa: S310 - a URL the user gave
            data = r.read()
    except urllib.error.HTTPError as e:
        body = e.read().strip().decode(errors="replace")
        raise ContextError(f"unable to download remote context {url}: failed to GET {url} "
                           f"with status {e.code} {e.reason}: {body}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ContextError(f"unable to download remote context {url}: {e}") from None
    from .buildcontext import looks_like_tar
    from .progress import progress_text

    def line(n: int) -> str:
        return f"Downloading build context from remote url: {url} " + progress_text(
            {"current": n, "total": len(data)}, 200) + "\r"

    if not looks_like_tar(data[:1024]):
        out.write(line(len(data)) * 2 + "\r\n")
    else:  # the archive sniffing's first 4 KiB buffer, then the rest in one read
        out.write((line(4096) if len(data) > 4096 else "") + line(len(data)))
    return data


# -- the build ----------------------------------------------------------------------------

def _stdin_chunks(head: bytes) -> Iterator[bytes]:
    if head:
        yield head
    while True:
        chunk = sys.stdin.buffer.read(1 << 20)
        if not chunk:
            return
        yield chunk


def _read_head(n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        c = sys.stdin.buffer.read(n - len(buf))
        if not c:
            break
        buf += c
    return buf


def prepare_context(o: dict[str, Any], context: str, progress: Out
                    ) -> tuple[Iterable[bytes], str, Callable[[], None], bool]:
    """runBuild's context half: (tar chunks, Dockerfile name for the
    daemon, clean-up, whether docker shows the "Sending" line). Raises
    Failure with docker's messages."""
    from . import buildcontext as bc

    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    sending_line = True
    dockerfile_name = o["file"]
    dockerfile_ctx: Callable[[], bytes] | None = None
    tar: Iterable[bytes] | None = None
    context_dir = ""
    if dockerfile_name == "-":
        if context == "-":
            raise Failure(STDIN_CONFLICT)
        dockerfile_ctx = lambda: sys.stdin.buffer.read()  # noqa: E731
    try:
        if context == "-":
            head = _read_head(1024)
            if bc.looks_like_tar(head):
                tar, rel = _stdin_chunks(head), dockerfile_name
            else:
                data = head + sys.stdin.buffer.read()
                tar, rel = bc.dockerfile_only_context(data), bc.DEFAULT_DOCKERFILE
        elif os.path.exists(context):
            context_dir, rel = bc.context_from_local_dir(context, dockerfile_name)
            if rel.startswith("../"):  # outside the context: sent under a random name
                try:
                    with open(dockerfile_name, "rb") as f:
                        outside = f.read()
                except OSError as e:
                    raise Failure(f"unable to open Dockerfile: open {dockerfile_name}: "
                                  f"{(e.strerror or str(e)).lower()}") from None
                dockerfile_ctx = lambda: outside  # noqa: E731
        elif _is_git_url(context):
            import shutil

            root, context_dir = clone_git_context(context)
            cleanup = lambda: shutil.rmtree(root, ignore_errors=True)  # noqa: E731
            try:
                rel = bc.dockerfile_rel_path(context_dir, dockerfile_name if dockerfile_name in (
                    "", "-") else os.path.join(context_dir, dockerfile_name))
                if rel.startswith("../"):
                    raise ContextError(f"the Dockerfile ({dockerfile_name}) must be within the "
                                       "build context")
            except BaseException:
                cleanup()
                raise
        elif _is_url(context):
            data = download_context(context, progress)
            if bc.looks_like_tar(data[:1024]):
                tar, rel, sending_line = [data], dockerfile_name, False
            elif dockerfile_name == "-":
                raise ContextError("build context is not an archive")
            else:
                tar, rel = bc.dockerfile_only_context(data), bc.DEFAULT_DOCKERFILE
        else:
            raise Failure(f'unable to prepare context: path "{context}" not found')
    except ContextError as e:
        raise Failure(f"unable to prepare context: {e}") from None
    if tar is None:
        try:
            tar = bc.directory_context(context_dir, rel, o["file"] == "-")
        except ContextError as e:
            cleanup()
            raise Failure(str(e)) from None
    if dockerfile_ctx is not None:
        tar, rel = bc.add_dockerfile(tar, dockerfile_ctx())
    if o["compress"]:
        tar = bc.gzip_stream(tar)
    return tar, rel, cleanup, sending_line


def run_build(o: dict[str, Any], context: str) -> None:
    """runBuild for the classic builder. Raises Failure."""
    from .client import APIError, ConnectError
    from .common import client
    from .progress import JSONError, display

    if o["stream"]:
        sys.stderr.write("DEPRECATED: The experimental --stream flag has been removed and the "
                         "build context\n            will be sent non-streaming. Enable "
                         "BuildKit instead with DOCKER_BUILDKIT=1\n            to stream build "
                         "context, see https://docs.docker.com/go/buildkit/\n\n")
    terminal = sys.stdout.isatty()
    progress, out = Out(o["quiet"]), Out(o["quiet"])
    if o["iidfile"]:
        try:
            os.remove(o["iidfile"])
        except FileNotFoundError:
            pass
        except OSError as e:
            raise Failure(f"Removing image ID file: {e}") from None
    tar, rel, cleanup, sending_line = prepare_context(o, context, progress)
    try:
        c = client()
        if o["squash"]:
            _require_experimental()
        params = build_query(o, rel, c.host)
        headers = {"X-Registry-Config": registry_config(), "Content-Type": "application/x-tar"}
        image_id = ""

        def on_aux(aux: Any) -> None:
            nonlocal image_id
            if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                image_id = aux["ID"]

        def dump_quiet() -> None:
            if o["quiet"]:
                sys.stderr.buffer.write(progress.text() + out.text())
                sys.stderr.flush()

        try:
            resp = c.request("POST", "/build", params, _with_progress(tar, progress, terminal,
                                                                       sending_line),
                             headers)
        except APIError as e:
            dump_quiet()
            raise Failure(f"Error response from daemon: {e.message}") from None
        except ConnectError as e:
            raise Failure(str(e)) from None
        except ContextError as e:
            raise Failure(str(e)) from None
        try:
            display(_messages(resp), out, terminal, on_aux)
        except JSONError as e:
            dump_quiet()
            raise Failure(e.message, e.code) from None
        except ConnectError as e:
            raise Failure(str(e)) from None
        finally:
            resp.close()
        if o["quiet"]:
            image_id = out.text().decode("utf-8", "surrogateescape")
            sys.stdout.write(image_id)
            sys.stdout.flush()
        if o["iidfile"]:
            if not image_id:
                raise Failure(f"Server did not provide an image ID. Cannot write {o['iidfile']}")
            fd = os.open(o["iidfile"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            with os.fdopen(fd, "w") as f:
                f.write(image_id)
    finally:
        cleanup()


def _messages(resp: Any) -> Iterator[dict[str, Any]]:
    import json

    from .progress import JSONError

    for line in resp.iter_lines():
        try:
            m = json.loads(line)
        except ValueError as e:
            raise JSONError(f"invalid character in the build output: {e}") from None
        if isinstance(m, dict):
            yield m


def _require_experimental() -> None:
    from .common import daemon_experimental

    if daemon_experimental() is False:
        raise Failure('"--squash" is only supported on a Docker daemon with experimental '
                      "features enabled")


def main(argv: list[str], prog: str = "dockyard build") -> int:
    """Parse `argv` as docker's build flags and build; returns the exit code."""
    try:
        o, args, want_help = parse_args(argv)
    except UsageError as e:
        print(f"{e}\nSee '{prog} --help'.", file=sys.stderr)
        return 125
    if want_help:
        sys.stdout.write(usage(prog))
        return 0
    if len(args) != 1:
        print(f'"{prog}" requires exactly 1 argument.\nSee \'{prog} --help\'.\n'
              f"\nUsage:  {prog} [OPTIONS] PATH | URL | -\n\nBuild an image from a Dockerfile",
              file=sys.stderr)
        return 1
    try:
        run_build(o, args[0])
    except Failure as e:
        sys.stdout.flush()
        if e.message:
            print(e.message, file=sys.stderr)
        return e.code
    return 0


# -- Typer glue ---------------------------------------------------------------------------

def _command(prog: str) -> Callable[..., None]:
    def build(ctx: typer.Context) -> None:
        """Build an image from a Dockerfile"""
        raise SystemExit(main(list(ctx.args), prog))

    return build


build = _command("dockyard build")
builder_build = _command("dockyard builder build")
image_build = _command("dockyard image build")  # added to the image group by cli/main.py


def prune(all: bool = typer.Option(False, "-a", "--all",
                                   help="Remove all unused build cache, not just dangling ones"),
          filter: Optional[List[str]] = typer.Option(None, "--filter",
                                                     help="Provide filter values"),
          force: bool = typer.Option(False, "-f", "--force",
                                     help="Do not prompt for confirmation"),
          keep_storage: Optional[str] = typer.Option(None, "--keep-storage",
                                                     help="Amount of disk space to keep for "
                                                     "cache")) -> None:
    """Remove build cache"""
    from . import prune as pruning
    from .common import call, client
    from .opts import filters_param

    keep = 0
    if keep_storage:
        try:
            keep = _ram(keep_storage)
        except ValueError as e:
            print(f'invalid argument "{keep_storage}" for "--keep-storage" flag: {e}\n'
                  "See 'dockyard builder prune --help'.", file=sys.stderr)
            raise SystemExit(125) from None
    warning = ("WARNING! This will remove all build cache. Are you sure you want to continue?"
               if all else "WARNING! This will remove all dangling build cache. Are you sure "
               "you want to continue?")
    if not force and not pruning.confirm(warning):
        return
    # client.BuildCachePrune sends keep-storage and filters even when unset
    params = {"all": "1" if all else None, "filters": filters_param(filter) or "",
              "keep-storage": str(keep)}
    r = call(lambda: client().post_json("/build/prune", params)) or {}
    deleted = r.get("CachesDeleted") or []
    output = "Deleted build cache objects:\n" + "".join(d + "\n" for d in deleted) \
        if deleted else ""
    pruning.report(r.get("SpaceReclaimed") or 0, output)


app = typer.Typer(help="Manage builds", no_args_is_help=True, add_completion=False)
app.command("build", context_settings=RAW)(builder_build)
app.command("prune")(prune)

# (command name, function, typer.command keywords); added to the `dockyard` app
# by cli/main.py like the other groups.
COMMANDS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("build", build, {"context_settings": RAW})]
