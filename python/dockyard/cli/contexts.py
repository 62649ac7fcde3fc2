"""Docker's client contexts: the on-disk store docker's CLI keeps and the
choice of the context (and so of the daemon) a command talks to.

A config dir holds `contexts/meta/<sha256 of name>/meta.json` and TLS material
in `contexts/tls/<sha256 of name>/docker/{ca,cert,key}.pem`; `config.json`
names the current context (`currentContext`). Dockyard reads two config dirs,
as it does for credentials and detach keys: its own (`$DOCKYARD_CONFIG` or
~/.dockyard), where it writes, over docker's (`$DOCKER_CONFIG` or ~/.docker),
so that contexts made by either CLI serve both. The formats are docker's
byte for byte (its `store` and `command` packages), errors are its words.

Imports stay light: the fast path (`dockyard run`) resolves the context too.
"""

from __future__ import annotations

import os

from . import fastjson
from .contextname import DEFAULT, config_dirs, read_config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

DEFAULT_DESCRIPTION = "Current DOCKER_HOST based configuration"
NAME_PATTERN = "^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$"
DOCKER_ENDPOINT = "docker"
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")
IN_MEMORY = "<IN MEMORY>"


class ContextError(Exception):
    """A context operation failed; `str(e)` is docker's message."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


# --- config dirs and config.json ---------------------------------------------

def write_config(config_dir: str, cfg: dict[str, Any]) -> None:
    """config.json replaced atomically (docker's layout: tab-indented, 0600)."""
    import tempfile

    os.makedirs(config_dir, mode=0o700, exist_ok=True)
    path = os.path.join(config_dir, "config.json")
    fd, tmp = tempfile.mkstemp(dir=config_dir, prefix=".config.json.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(go_json(cfg, indent="\t"))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def set_current(name: str) -> None:
    """Make `name` the configured context ("default": none). Dockyard's
    config.json says "default" outright when docker's names another, which
    it would otherwise fall back to."""
    dirs = config_dirs()
    value = "" if name == DEFAULT else name
    if not value and len(dirs) > 1 and read_config(dirs[1]).get("currentContext"):
        value = DEFAULT
    cfg = read_config(dirs[0])
    if (cfg.get("currentContext") or "") == value:
        return
    if value:
        cfg["currentContext"] = value
    else:
        cfg.pop("currentContext", None)
    write_config(dirs[0], cfg)


def host_env() -> tuple[str, str] | None:
    """The host variable in force (DOCKYARD_HOST before DOCKER_HOST)."""
    for var in ("DOCKYARD_HOST", "DOCKER_HOST"):
        v = os.environ.get(var)
        if v:
            return var, v
    return None


def validate_name(name: str) -> None:
    import re

    if name == "":
        raise ContextError("context name cannot be empty")
    if name == DEFAULT:
        raise ContextError('"default" is a reserved context name')
    if not re.match(NAME_PATTERN, name) or name.endswith("\n"):
        raise ContextError(f'context name "{name}" is invalid, names are validated against '
                           f'regexp "{NAME_PATTERN}"')


# --- JSON as Go writes it ------------------------------------------------------

def go_json(obj: Any, indent: str | None = None) -> str:
    """encoding/json's output: HTML characters escaped, non-ASCII kept."""
    import json

    if indent is None:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(obj, indent=indent, ensure_ascii=False)
    for c, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                   ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(c, esc)
    return text


def _sorted(v: Any) -> Any:
    """A JSON value with its objects' keys sorted (Go marshals maps so)."""
    if isinstance(v, dict):
        return {k: _sorted(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [_sorted(x) for x in v]
    return v


def _field(obj: dict[str, Any], name: str) -> Any:
    """A struct field as encoding/json finds it: exact key, else any case."""
    if name in obj:
        return obj[name]
    low = name.lower()
    for k, v in obj.items():
        if k.lower() == low:
            return v
    return None


def normalize(raw: Any, path: str) -> dict[str, Any]:
    """meta.json as docker reads it into its types and writes it back: Name,
    Metadata (Description only when set, other fields kept), Endpoints (the
    docker one as Host/SkipTLSVerify, others as they are)."""
    if not isinstance(raw, dict):
        raise ContextError(f"parsing {path}: json: cannot unmarshal into Go value of type "
                           "store.untypedContextMetadata")
    out: dict[str, Any] = {}
    name = _field(raw, "name")
    if isinstance(name, str) and name:
        out["Name"] = name
    md = _field(raw, "metadata")
    if md is not None:
        if not isinstance(md, dict):
            raise ContextError(f"parsing {path}: json: cannot unmarshal into Go value of type "
                               "command.DockerContext")
        out["Metadata"] = _sorted({k: v for k, v in md.items()
                                   if not (k == "Description" and not v)})
    endpoints = _field(raw, "endpoints")
    eps: dict[str, Any] = {}
    if isinstance(endpoints, dict):
        for k in sorted(endpoints):
            v = endpoints[k]
            if k == DOCKER_ENDPOINT and isinstance(v, dict):
                ep: dict[str, Any] = {}
                host = _field(v, "Host")
                if isinstance(host, str) and host:
                    ep["Host"] = host
                ep["SkipTLSVerify"] = _field(v, "SkipTLSVerify") is True
                eps[k] = ep
            else:
                eps[k] = _sorted(v)
    if eps:
        out["Endpoints"] = eps
    return out


def description(meta: dict[str, Any]) -> str:
    """The context's description as docker's GetDockerContext gives it."""
    if meta.get("Name") == DEFAULT:
        return DEFAULT_DESCRIPTION
    d = (meta.get("Metadata") or {}).get("Description")
    return d if isinstance(d, str) else ""


def docker_endpoint(meta: dict[str, Any]) -> dict[str, Any]:
    ep = (meta.get("Endpoints") or {}).get(DOCKER_ENDPOINT)
    if ep is None:
        raise ContextError("cannot find docker endpoint in context")
    if not isinstance(ep, dict):
        raise ContextError('endpoint "docker" is not of type EndpointMeta')
    return ep


# --- one config dir's store ----------------------------------------------------

def digest(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()


class Store:
    """The contexts of one config dir (`<dir>/contexts`)."""

    def __init__(self, config_dir: str) -> None:
        self.root = os.path.join(config_dir, "contexts")

    def meta_dir(self, name: str) -> str:
        return os.path.join(self.root, "meta", digest(name))

    def tls_dir(self, name: str) -> str:
        return os.path.join(self.root, "tls", digest(name))

    def has(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.meta_dir(name), "meta.json"))

    def _read(self, path: str) -> dict[str, Any]:
        with open(path, "rb") as f:
            data = f.read()
        try:
            raw = fastjson.loads(data)
        except ValueError as e:
            raise ContextError(f"parsing {path}: {e}") from None
        return normalize(raw, path)

    def get(self, name: str) -> dict[str, Any]:
        path = os.path.join(self.meta_dir(name), "meta.json")
        try:
            return self._read(path)
        except FileNotFoundError:
            raise ContextError(f'context "{name}": context not found: open {path}: '
                               "no such file or directory", not_found=True) from None
        except ContextError as e:
            raise ContextError(f'context "{name}": {e}') from None
        except OSError as e:
            raise ContextError(f'context "{name}": open {path}: {e.strerror.lower()}') from None

    def list(self) -> list[dict[str, Any]]:
        """Every context, found at any depth under meta/ as docker does."""
        out = []
        for d, dirs, files in os.walk(os.path.join(self.root, "meta")):
            dirs.sort()
            path = os.path.join(d, "meta.json")
            if d != os.path.join(self.root, "meta") and os.path.isfile(path):
                try:
                    out.append(self._read(path))
                except FileNotFoundError:
                    continue
                except ContextError as e:
                    raise ContextError(f"failed to read metadata: {e}") from None
        return out

    def save(self, meta: dict[str, Any]) -> None:
        d = self.meta_dir(meta["Name"])
        os.makedirs(d, mode=0o755, exist_ok=True)
        _write_atomic(os.path.join(d, "meta.json"), go_json(normalize(meta, "")).encode(), 0o644)

    def remove(self, name: str) -> None:
        import shutil

        for d in (self.meta_dir(name), self.tls_dir(name)):
            shutil.rmtree(d, ignore_errors=True)

    def tls_files(self, name: str) -> dict[str, list[str]]:
        base = self.tls_dir(name)
        try:
            endpoints = sorted(os.listdir(base))
        except FileNotFoundError:
            return {}
        out: dict[str, list[str]] = {}
        for ep in endpoints:
            p = os.path.join(base, ep)
            if os.path.isdir(p):
                out[ep] = sorted(f for f in os.listdir(p) if not os.path.isdir(os.path.join(p, f)))
        return out

    def tls_data(self, name: str, endpoint: str, file: str) -> bytes:
        with open(os.path.join(self.tls_dir(name), endpoint, file), "rb") as f:
            return f.read()

    def reset_tls(self, name: str, data: dict[str, dict[str, bytes]]) -> None:
        import shutil

        shutil.rmtree(self.tls_dir(name), ignore_errors=True)
        for ep, files in data.items():
            self.reset_endpoint_tls(name, ep, files)

    def reset_endpoint_tls(self, name: str, endpoint: str, files: dict[str, bytes] | None) -> None:
        import shutil

        d = os.path.join(self.tls_dir(name), endpoint)
        shutil.rmtree(d, ignore_errors=True)
        if not files:
            return
        os.makedirs(d, mode=0o700, exist_ok=True)
        for fname, content in files.items():
            _write_atomic(os.path.join(d, fname), content, 0o600)


def _write_atomic(path: str, data: bytes, mode: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --- the stores together, with the default context ---------------------------

class DefaultEndpoint:
    """The endpoint the global options and environment name (docker's
    `default` context): host, whether TLS skips verification, TLS files."""

    def __init__(self, host: str, skip_verify: bool = False,
                 tls_files: dict[str, str] | None = None) -> None:
        self.host, self.skip_verify, self.tls_files = host, skip_verify, tls_files or {}


class Contexts:
    """Dockyard's store over docker's, plus the `default` context."""

    def __init__(self, resolve_default: Callable[[], DefaultEndpoint]) -> None:
        self.stores = [Store(d) for d in config_dirs()]
        self.primary = self.stores[0]
        self._resolve_default = resolve_default
        self._default: DefaultEndpoint | None = None

    @property
    def default(self) -> DefaultEndpoint:
        """Resolved when first needed: a bad --tlscacert fails only then."""
        if self._default is None:
            self._default = self._resolve_default()
        return self._default

    def store_of(self, name: str) -> Store | None:
        for s in self.stores:
            if s.has(name):
                return s
        return None

    def exists(self, name: str) -> bool:
        return name == DEFAULT or self.store_of(name) is not None

    def get(self, name: str) -> dict[str, Any]:
        if name == DEFAULT:
            return self.default_meta()
        return (self.store_of(name) or self.primary).get(name)

    def default_meta(self) -> dict[str, Any]:
        return {"Name": DEFAULT, "Metadata": {},
                "Endpoints": {DOCKER_ENDPOINT: {"Host": self.default.host,
                                                "SkipTLSVerify": self.default.skip_verify}}}

    def list(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for s in self.stores:
            for m in s.list():
                seen.setdefault(m.get("Name", ""), m)
        return [*seen.values(), self.default_meta()]

    def tls_files(self, name: str) -> dict[str, list[str]]:
        if name == DEFAULT:
            files = self.default.tls_files
            return {DOCKER_ENDPOINT: sorted(files)} if files else {}
        s = self.store_of(name)
        return s.tls_files(name) if s else {}

    def tls_data(self, name: str, endpoint: str, file: str) -> bytes:
        if name == DEFAULT:
            with open(self.default.tls_files[file], "rb") as f:
                return f.read()
        s = self.store_of(name) or self.primary
        return s.tls_data(name, endpoint, file)

    def storage(self, name: str) -> dict[str, str]:
        if name == DEFAULT:
            return {"MetadataPath": IN_MEMORY, "TLSPath": IN_MEMORY}
        s = self.store_of(name) or self.primary
        return {"MetadataPath": s.meta_dir(name), "TLSPath": s.tls_dir(name)}

    def tls_paths(self, name: str) -> dict[str, str]:
        """The docker endpoint's TLS files by kind (ca/cert/key) on disk."""
        if name == DEFAULT:
            return {f[:-4]: p for f, p in self.default.tls_files.items()}
        s = self.store_of(name)
        if s is None:
            return {}
        files = s.tls_files(name).get(DOCKER_ENDPOINT) or []
        d = os.path.join(s.tls_dir(name), DOCKER_ENDPOINT)
        return {f[:-4]: os.path.join(d, f) for f in files if f in TLS_FILES}


def is_socket(host: str) -> bool:
    return host.split("://", 1)[0] in ("unix", "npipe", "fd") if "://" in host else False


# --- docker's host syntax (opts.ParseHost) ------------------------------------

def parse_host(value: str, default: str) -> str:
    """A -H/DOCKER_HOST value in docker's normal form ("tcp://h:2375")."""
    host = value.strip()
    if not host:
        return default
    proto, sep, rest = host.partition("://")
    if not sep:
        proto, rest = "tcp", host
    if proto == "tcp":
        return _parse_tcp(rest, host)
    if proto in ("unix", "npipe"):
        if "://" in rest:
            raise ContextError(f"invalid proto, expected {proto}: {rest}")
        return f"{proto}://{rest or ('/var/run/docker.sock' if proto == 'unix' else '//./pipe/docker_engine')}"
    if proto in ("fd", "ssh"):
        return host
    raise ContextError(f"invalid bind address format: {host}")


def _parse_tcp(addr: str, orig: str) -> str:
    if addr == "":
        return "tcp://localhost:2375"
    if "://" in addr:
        raise ContextError(f"invalid proto, expected tcp: {orig}")
    hostport, slash, path = addr.partition("/")
    if hostport.endswith("]:"):
        hostport += "2375"
    if hostport.startswith("["):
        h, _, rest = hostport[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ContextError(f"invalid bind address format: {orig}")
        port = rest[1:] if rest else "2375"
    elif hostport.count(":") == 1:
        h, port = hostport.split(":")
    elif ":" not in hostport:
        h, port = hostport, "2375"
    else:
        raise ContextError(f"invalid bind address format: {orig}")
    h = h or "localhost"
    port = port or "2375"
    if not port.isdigit():
        raise ContextError(f"invalid bind address format: {orig}")
    shown = f"[{h}]" if ":" in h else h
    return f"tcp://{shown}:{port}{slash}{path}"
