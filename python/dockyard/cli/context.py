"""The `context` command group (docker's `context` commands): named daemon
endpoints kept in the client's config dir (the store: contexts.py), shared
with docker's CLI. No command here talks to a daemon."""

from __future__ import annotations

import os
import sys
from typing import Any, List, NoReturn, Optional

import typer

from .common import current_context, default_endpoint, fail
from .contexts import DEFAULT, DEFAULT_DESCRIPTION, DOCKER_ENDPOINT, ContextError, Contexts
from .gotemplate.values import MISSING

app = typer.Typer(help="Manage contexts", no_args_is_help=True, add_completion=False)

PROG = "dockyard"
MAX_IMPORT = 10 << 20
HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "DockerEndpoint": "DOCKER ENDPOINT",
           "Error": "ERROR", "Current": MISSING}  # Go: missing, so no " *" in the header
TABLE = "table {{.Name}}{{if .Current}} *{{end}}\t{{.Description}}\t{{.DockerEndpoint}}\t{{.Error}}"
HOST_OVERRIDES = ("Warning: {var} environment variable overrides the active context. To use "
                  "{what}, either set the global --context flag, or unset {var} environment "
                  "variable.")


class Row:
    """One line of `context ls`, a struct to templates as docker's
    formatter context is (its fields, its %T, its JSON)."""

    json_escapes_html = True

    def __init__(self, name: str, current: bool, description: str = "", endpoint: str = "",
                 error: str = "") -> None:
        self.Name, self.Current, self.Description = name, current, description
        self.DockerEndpoint, self.Error = endpoint, _ellipsis(error)


Row.__name__ = Row.__qualname__ = "*formatter.clientContextContext"


def _store() -> Contexts:
    return Contexts(default_endpoint)


def _args(args: list[str] | None, cmd: str, usage: str, lo: int, hi: int | None,
          see: str = "Run") -> list[str]:
    """The positional arguments, or docker's message for a wrong count."""
    args = list(args or [])
    if lo <= len(args) and (hi is None or len(args) <= hi):
        return args
    if hi == 0:
        want = "accepts no arguments"
    elif hi is None:
        want = f"requires at least {lo} argument{'s' if lo != 1 else ''}"
    elif lo == hi:
        want = f"requires {lo} argument{'s' if lo != 1 else ''}"
    else:
        want = f"requires at least {lo} and at most {hi} arguments"
    fail(f"{PROG}: '{PROG} context {cmd}' {want}\n\nUsage:  {PROG} context {usage}\n\n"
         f"{see} '{PROG} context {cmd} --help' for more information")


def _fail(e: ContextError | OSError | str) -> NoReturn:
    fail(str(e) if not isinstance(e, OSError) else _os_error(e))


def _os_error(e: OSError) -> str:
    """An OSError in Go's words ("open PATH: no such file or directory")."""
    what = "open" if not isinstance(e, IsADirectoryError) else "read"
    return f"{what} {e.filename}: {(e.strerror or str(e)).lower()}"


def _natural_key(name: str) -> list[tuple[Any, ...]]:
    """sortorder.NaturalLess: digit runs compare as numbers and before
    other bytes; otherwise bytewise."""
    b, out, i = name.encode(), [], 0
    while i < len(b):
        if 48 <= b[i] <= 57:
            j = i
            while j < len(b) and 48 <= b[j] <= 57:
                j += 1
            digits = b[i:j]
            stripped = digits.lstrip(b"0")
            out.append((0, len(stripped), stripped, len(digits) - len(stripped)))
            i = j
        else:
            out.append((1, b[i]))
            i += 1
    return out


def _docker_flag(values: list[str] | None, cmd: str, usage: str) -> dict[str, str] | None:
    """`--docker k=v,...` (pflag's StringToString: one `=` keeps commas in
    the value; more split as CSV); None when the flag isn't given."""
    if values is None:
        return None
    import csv

    out: dict[str, str] = {}
    for val in values:
        n = val.count("=")
        pairs = [val.strip('"')] if n == 1 else next(csv.reader([val])) if n else [val]
        for pair in pairs:
            k, eq, v = pair.partition("=")
            if not eq:
                fail(f'invalid argument "{val}" for "--docker" flag: {pair} must be formatted '
                     f"as key=value\n\nUsage:  {PROG} context {usage}\n\n"
                     f"Run '{PROG} context {cmd} --help' for more information", 125)
            out[k] = v
    return out


def _parse_bool(cfg: dict[str, str], key: str) -> bool:
    v = cfg.get(key)
    if v is None:
        return False
    if v in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if v in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ContextError(f'{key}: parsing "{v}": invalid syntax')


def _pem_blocks(data: bytes) -> list[str]:
    import re

    return [t.decode() for t in re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)]


def _check_tls(files: dict[str, bytes]) -> None:
    """What docker's client makes of the TLS files (a TCP endpoint's)."""
    ca, cert, key = files.get("ca.pem"), files.get("cert.pem"), files.get("key.pem")
    if ca is not None and "CERTIFICATE" not in _pem_blocks(ca):
        raise ContextError("failed to retrieve context tls info: ca.pem seems invalid")
    if key is None or cert is None:
        return
    kinds = _pem_blocks(key)
    if not kinds:
        raise ContextError("no valid private key found")
    if b"ENCRYPTED" in key.split(b"-----END", 1)[0]:
        raise ContextError("private key is encrypted - support for encrypted private keys has "
                           "been removed, see https://docs.docker.com/go/deprecated/")
    if "PRIVATE KEY" not in " ".join(kinds):
        raise ContextError("failed to retrieve context tls info: tls: found a certificate "
                           "rather than a key in the PEM for the private key")
    if not _pem_blocks(cert):
        raise ContextError("failed to retrieve context tls info: tls: failed to find any PEM "
                           "data in certificate input")
    import ssl
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for n, data in (("cert.pem", cert), ("key.pem", key)):
            with open(os.path.join(d, n), "wb") as f:
                f.write(data)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
                os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
        except ssl.SSLError:
            raise ContextError("failed to retrieve context tls info: tls: private key does "
                               "not match public key") from None


def _endpoint(store: Contexts, cfg: dict[str, str]) -> tuple[dict[str, Any], dict[str, bytes] | None]:
    """The docker endpoint and TLS files `--docker` describes (docker's
    getDockerEndpoint, with its checks of the host and the TLS material)."""
    allowed = ("from", "host", "ca", "cert", "key", "skip-tls-verify")
    unknown = [f"unrecognized config key: {k}" for k in cfg if k not in allowed]
    if unknown:
        raise ContextError("\n".join(unknown))
    if "from" in cfg:
        meta = store.get(cfg["from"])
        ep = (meta.get("Endpoints") or {}).get(DOCKER_ENDPOINT)
        if not isinstance(ep, dict):
            raise ContextError(f'unable to get endpoint from context "{cfg["from"]}"')
        return dict(ep), None
    files: dict[str, bytes] = {}
    for key, fname in (("ca", "ca.pem"), ("cert", "cert.pem"), ("key", "key.pem")):
        if cfg.get(key):
            try:
                with open(cfg[key], "rb") as f:
                    files[fname] = f.read()
            except OSError as e:
                raise ContextError(_os_error(e)) from None
    skip = _parse_bool(cfg, "skip-tls-verify")
    host = cfg.get("host", "")
    if host:
        proto, sep, rest = host.partition("://")
        _check_url_host(host, rest.split("/", 1)[0] if sep else "")
        if proto not in ("unix", "npipe", "fd") and (files or skip):
            try:
                _check_tls(files)
            except ContextError as e:
                raise ContextError(f"invalid docker endpoint options: {e}") from None
        if not sep:
            raise ContextError("unable to apply docker endpoint options: unable to parse "
                               f"docker host `{host}`")
    ep: dict[str, Any] = {"Host": host} if host else {}
    ep["SkipTLSVerify"] = skip
    return ep, files or None


def _check_url_host(url: str, authority: str) -> None:
    """What Go's url.Parse refuses in a host: a bad port, a space."""
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        port = hostport.partition("]")[2]
    else:
        i = hostport.rfind(":")
        port = hostport[i:] if i >= 0 else ""
    if port and not (port[0] == ":" and port[1:].isdigit() or port == ":"):
        raise ContextError(f'invalid docker endpoint options: parse "{url}": invalid port '
                           f'"{port}" after host')
    if " " in hostport:
        raise ContextError(f'invalid docker endpoint options: parse "{url}": invalid '
                           'character " " in host name')


def _check_new_name(store: Contexts, name: str) -> None:
    from .contexts import validate_name

    validate_name(name)
    if store.store_of(name) is not None:
        raise ContextError(f'context "{name}" already exists')


def _copy_tls(store: Contexts, name: str) -> dict[str, dict[str, bytes]]:
    return {ep: {f: store.tls_data(name, ep, f) for f in files}
            for ep, files in store.tls_files(name).items()}


CREATE_USAGE = "create [OPTIONS] CONTEXT"


@app.command("create")
def create(args: Optional[List[str]] = typer.Argument(None, metavar="CONTEXT"),
           description: str = typer.Option("", "--description",
                                           help="Description of the context"),
           docker: Optional[List[str]] = typer.Option(None, "--docker",
                                                      help="set the docker endpoint"),
           from_: str = typer.Option("", "--from", help="create context from a named context")
           ) -> None:
    """Create a context"""
    (name,) = _args(args, "create", CREATE_USAGE, 1, 1)
    cfg = _docker_flag(docker, "create", CREATE_USAGE)
    store = _store()
    try:
        _check_new_name(store, name)
        if from_ or cfg is None:
            if cfg:
                raise ContextError("cannot use --docker flag when --from is set")
            src = from_ or current_context()
            meta = store.get(src)
            md = dict(meta.get("Metadata") or {})
            if src == DEFAULT:
                md["Description"] = DEFAULT_DESCRIPTION
            if description:
                md["Description"] = description
            tls = _copy_tls(store, src)
            store.primary.save({"Name": name, "Metadata": md,
                                "Endpoints": meta.get("Endpoints") or {}})
            store.primary.reset_tls(name, tls)
        else:
            try:
                ep, files = _endpoint(store, cfg)
            except ContextError as e:
                raise ContextError(f"unable to create docker endpoint config: {e}") from None
            store.primary.save({"Name": name,
                                "Metadata": {"Description": description} if description else {},
                                "Endpoints": {DOCKER_ENDPOINT: ep}})
            store.primary.reset_tls(name, {DOCKER_ENDPOINT: files} if files else {})
    except ContextError as e:
        _fail(e)
    print(name)
    print(f'Successfully created context "{name}"', file=sys.stderr)


UPDATE_USAGE = "update [OPTIONS] CONTEXT"


@app.command("update")
def update(args: Optional[List[str]] = typer.Argument(None, metavar="CONTEXT"),
           description: str = typer.Option("", "--description",
                                           help="Description of the context"),
           docker: Optional[List[str]] = typer.Option(None, "--docker",
                                                      help="set the docker endpoint")) -> None:
    """Update a context"""
    from .contexts import validate_name

    (name,) = _args(args, "update", UPDATE_USAGE, 1, 1)
    cfg = _docker_flag(docker, "update", UPDATE_USAGE)
    store = _store()
    try:
        validate_name(name)
        meta = store.get(name)
        where = store.store_of(name) or store.primary
        md = dict(meta.get("Metadata") or {})
        if description:
            md["Description"] = description
        meta["Metadata"] = md
        files = None
        if cfg is not None:
            try:
                ep, files = _endpoint(store, cfg)
            except ContextError as e:
                raise ContextError(f"unable to create docker endpoint config: {e}") from None
            meta.setdefault("Endpoints", {})[DOCKER_ENDPOINT] = ep
        meta["Name"] = name
        where.save(meta)
        if cfg is not None:
            where.reset_endpoint_tls(name, DOCKER_ENDPOINT, files)
    except ContextError as e:
        _fail(e)
    print(name)
    print(f'Successfully updated context "{name}"', file=sys.stderr)


@app.command("ls")
def list_contexts(args: Optional[List[str]] = typer.Argument(None, hidden=True),
                  format: str = typer.Option("", "--format", help="Format output using a "
                                             "custom template"),
                  quiet: bool = typer.Option(False, "-q", "--quiet",
                                             help="Only show context names")) -> None:
    """List contexts"""
    from .contexts import description, docker_endpoint, host_env
    from .output import print_rows

    _args(args, "ls", "ls [OPTIONS]", 0, 0)
    store = _store()
    cur = current_context()
    rows = []
    try:
        metas = store.list()
    except ContextError as e:
        _fail(e)
    for meta in metas:
        name = meta.get("Name", "")
        err, host = "", ""
        try:
            host = docker_endpoint(meta).get("Host", "")
        except ContextError as e:
            err = str(e)
        rows.append(Row(name, name == cur, description(meta), host, err))
    if not any(r.Name == cur for r in rows):
        err = ""
        try:
            store.get(cur)
        except ContextError as e:
            err = str(e)
        rows.append(Row(cur, True, error=err))
    rows.sort(key=lambda r: _natural_key(r.Name))
    fmt = "{{.Name}}" if quiet else (TABLE if format in ("", "table") else format)
    print_rows(fmt, rows, HEADERS)
    env = host_env()
    if env:
        print(HOST_OVERRIDES.format(var=env[0], what="a context"), file=sys.stderr)


app.command("list", hidden=True)(list_contexts)


def _ellipsis(s: str, width: int = 45) -> str:
    return s if len(s) <= width else s[:width - 1] + "…"


def _go_v(*fields: Any) -> str:
    """fmt's %v of a struct with these field values."""
    from .gotemplate.fmt import go_sprint

    return "{" + " ".join(go_sprint(f, False) for f in fields) + "}"


class EndpointView:
    """The docker endpoint (docker.EndpointMeta): Host, SkipTLSVerify."""

    def __init__(self, ep: dict[str, Any]) -> None:
        self.ep = ep
        self.Host, self.SkipTLSVerify = ep.get("Host", ""), bool(ep.get("SkipTLSVerify"))

    def __json__(self) -> dict[str, Any]:
        return self.ep

    def __str__(self) -> str:
        return _go_v(self.Host, self.SkipTLSVerify)


class DockerContextView:
    """A context's Metadata to templates (command.DockerContext): its
    Description and other fields; its JSON is json.Marshal's (escaped)."""

    json_escapes_html = True

    def __init__(self, md: dict[str, Any]) -> None:
        self.md = md
        self.Description = md.get("Description", "")
        self.AdditionalFields = {k: v for k, v in md.items() if k != "Description"}

    def __json__(self) -> dict[str, Any]:
        return self.md

    def __str__(self) -> str:
        return _go_v(self.Description, self.AdditionalFields)


class StoreMetadataView:
    """store.Metadata: Name, Metadata, Endpoints."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.Name = meta.get("Name", "")
        md = meta.get("Metadata")
        self.Metadata = DockerContextView(md) if isinstance(md, dict) else md
        self.Endpoints = {k: EndpointView(v) if k == DOCKER_ENDPOINT and isinstance(v, dict)
                          else v for k, v in (meta.get("Endpoints") or {}).items()}
        self.json = {k: getattr(self, k) for k in ("Name", "Metadata", "Endpoints") if k in meta}

    def __json__(self) -> dict[str, Any]:
        return self.json

    def __str__(self) -> str:
        return _go_v(self.Name, self.Metadata, self.Endpoints)


class StorageView:
    """store.StorageInfo: where the context's files are."""

    def __init__(self, info: dict[str, str]) -> None:
        self.info = info
        self.MetadataPath, self.TLSPath = info["MetadataPath"], info["TLSPath"]

    def __json__(self) -> dict[str, Any]:
        return self.info

    def __str__(self) -> str:
        return _go_v(self.MetadataPath, self.TLSPath)


class Inspected:
    """A context as `inspect` shows it to templates (contextWithTLSListing:
    store.Metadata embedded, so `.Name` and `.Metadata.Metadata`)."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.Metadata = StoreMetadataView(obj)
        self.Name, self.Endpoints = self.Metadata.Name, self.Metadata.Endpoints
        self.TLSMaterial, self.Storage = obj["TLSMaterial"], StorageView(obj["Storage"])

    def __json__(self) -> dict[str, Any]:
        return {**self.Metadata.json, "TLSMaterial": self.TLSMaterial, "Storage": self.Storage}

    def __str__(self) -> str:
        return _go_v(self.Metadata, self.TLSMaterial, self.Storage)


for _cls, _go in ((EndpointView, "context.EndpointMetaBase"),
                  (DockerContextView, "command.DockerContext"),
                  (StoreMetadataView, "store.Metadata"), (StorageView, "store.StorageInfo"),
                  (Inspected, "context.contextWithTLSListing")):
    _cls.__name__ = _cls.__qualname__ = _go


@app.command("inspect")
def inspect(refs: Optional[List[str]] = typer.Argument(None, metavar="[CONTEXT] [CONTEXT...]"),
            format: str = typer.Option("", "-f", "--format",
                                       help="Format output using a custom template")) -> None:
    """Display detailed information on one or more contexts"""
    from .gotemplate import TemplateError, format_one
    from .output import print_json_indent

    if format:
        try:
            format_one(format, {})
        except TemplateError as e:
            if getattr(e, "kind", "") == "parse":
                fail(getattr(e, "docker_message", str(e)), getattr(e, "exit_code", 64))
    names = list(refs or []) or [current_context()]
    store = _store()
    found, out, errors = [], [], []
    for n in names:
        try:
            obj = dict(store.get(n))
            obj["TLSMaterial"] = store.tls_files(n)
            obj["Storage"] = store.storage(n)
        except ContextError as e:
            errors.append(str(e))
            continue
        found.append(obj)
        if format and format != "json":
            try:
                out.append(format_one(format, Inspected(obj)))
            except TemplateError as e:
                errors.append(getattr(e, "docker_message", str(e)))
    if format == "json":  # docker's inspect: the list, compact
        from .contexts import go_json

        print(go_json(found))
    elif format:
        sys.stdout.write("".join(out) or "\n")
    else:
        print_json_indent(found)
    if errors:
        sys.stdout.flush()
        fail("\n".join(errors))


@app.command("use")
def use(args: Optional[List[str]] = typer.Argument(None, metavar="CONTEXT")) -> None:
    """Set the current docker context"""
    from .contexts import host_env, set_current, validate_name

    if len(args or []) != 1:
        fail(f"accepts 1 arg(s), received {len(args or [])}")
    name = (args or [""])[0]
    try:
        if name != DEFAULT:
            validate_name(name)
            _store().get(name)
        set_current(name)
    except ContextError as e:
        _fail(e)
    except OSError as e:
        _fail(e)
    print(name)
    print(f'Current context is now "{name}"', file=sys.stderr)
    env = host_env()
    if name != DEFAULT and env:
        print(HOST_OVERRIDES.format(var=env[0], what=f'"{name}"'), file=sys.stderr)


@app.command("show")
def show(args: Optional[List[str]] = typer.Argument(None, hidden=True)) -> None:
    """Print the name of the current context"""
    _args(args, "show", "show", 0, 0)
    print(current_context())


@app.command("rm")
def remove(args: Optional[List[str]] = typer.Argument(None, metavar="CONTEXT [CONTEXT...]"),
           force: bool = typer.Option(False, "-f", "--force",
                                      help="Force the removal of a context in use")) -> None:
    """Remove one or more contexts"""
    from .contexts import set_current

    names = _args(args, "rm", "rm CONTEXT [CONTEXT...]", 1, None, see="See")
    store = _store()
    cur = current_context()
    errors = []
    for name in names:
        if name == DEFAULT:
            errors.append('context "default" cannot be removed')
            continue
        if name == cur:
            if not force:
                errors.append(f'context "{name}" is in use, set -f flag to force remove')
                continue
            set_current(DEFAULT)
        where = store.store_of(name)
        if where is None and not force and not any(
                os.path.exists(s.meta_dir(name)) for s in store.stores):
            errors.append(f'context "{name}" does not exist')
            continue
        for s in store.stores:
            if os.path.exists(s.meta_dir(name)) or os.path.exists(s.tls_dir(name)):
                s.remove(name)
                break
        print(name)
    if errors:
        sys.stdout.flush()
        fail("\n".join(errors))


app.command("remove", hidden=True)(remove)


def _tar_header(name: str, mode: int, size: int, kind: bytes) -> bytes:
    """A USTAR header as Go's archive/tar writes docker's: no owner names,
    zero times and device numbers."""
    def num(v: int, width: int) -> bytes:
        return b"%0*o\0" % (width - 1, v)

    hdr = bytearray(512)
    hdr[0:len(name)] = name.encode()
    hdr[100:108], hdr[108:116], hdr[116:124] = num(mode, 8), num(0, 8), num(0, 8)
    hdr[124:136], hdr[136:148] = num(size, 12), num(0, 12)
    hdr[148:156] = b" " * 8
    hdr[156:157] = kind
    hdr[257:265] = b"ustar\x0000"
    hdr[329:337], hdr[337:345] = num(0, 8), num(0, 8)
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    return bytes(hdr)


def _export_tar(store: Contexts, name: str) -> bytes:
    """The context as docker's export writes it: meta.json, then tls/ with
    each endpoint's files. Docker's own stream stops short (its tar writer
    closes after the pipe); this one ends as a tar should."""
    from .contexts import go_json, normalize

    meta = normalize(store.get(name), "")
    parts = []

    def add(path: str, mode: int, data: bytes | None = None) -> None:
        parts.append(_tar_header(path, mode, len(data or b""), b"5" if data is None else b"0"))
        if data:
            parts.append(data + bytes(-len(data) % 512))

    add("meta.json", 0o644, go_json(meta).encode())
    add("tls", 0o700)
    for ep, files in store.tls_files(name).items():
        add(f"tls/{ep}", 0o700)
        for f in files:
            add(f"tls/{ep}/{f}", 0o600, store.tls_data(name, ep, f))
    return b"".join(parts) + bytes(1024)


@app.command("export")
def export(args: Optional[List[str]] = typer.Argument(None, metavar="CONTEXT [FILE|-]")) -> None:
    """Export a context to a tar archive FILE or a tar stream on STDOUT."""
    from .contexts import validate_name

    args = _args(args, "export", "export [OPTIONS] CONTEXT [FILE|-]", 1, 2)
    name = args[0]
    dest = args[1] if len(args) == 2 else name + ".dockercontext"
    try:
        if name != DEFAULT:
            validate_name(name)
        data = _export_tar(_store(), name)
    except ContextError as e:
        _fail(e)
    if dest == "-":
        if sys.stdout.isatty():
            fail("cowardly refusing to export to a terminal, specify a file path")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        _fail(e)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    print(f'Written file "{dest}"', file=sys.stderr)


def _tar_entries(data: bytes) -> list[tuple[str, bool, bytes]]:
    """(name, is a regular file, content) of each entry of a tar, read as
    Go's archive/tar does: an archive that stops after a whole entry (as
    docker's own exports do, unpadded) ends there."""
    out: list[tuple[str, bool, bytes]] = []
    off, long_name = 0, None
    while off + 512 <= len(data):
        hdr = data[off:off + 512]
        if hdr == bytes(512):
            break
        try:
            stored = int(hdr[148:156].strip(b" \0") or b"0", 8)
            size = int(hdr[124:136].strip(b" \0") or b"0", 8)
        except ValueError:
            raise ContextError("archive/tar: invalid tar header") from None
        if stored != sum(hdr[:148]) + 256 + sum(hdr[156:]):
            raise ContextError("archive/tar: invalid tar header")
        kind = hdr[156:157]
        name = hdr[:100].split(b"\0", 1)[0]
        if hdr[257:262] == b"ustar" and hdr[345:500].strip(b"\0"):
            name = hdr[345:500].split(b"\0", 1)[0] + b"/" + name
        off += 512
        body = data[off:off + size]
        if len(body) < size:
            raise ContextError("unexpected EOF")
        off += (size + 511) // 512 * 512
        if kind == b"L":
            long_name = body.split(b"\0", 1)[0]
            continue
        if kind in (b"x", b"g"):
            for rec in body.decode(errors="replace").split("\n"):
                _, _, kv = rec.partition(" ")
                if kv.startswith("path=") and kind == b"x":
                    long_name = kv[5:].encode()
            continue
        if long_name is not None:
            name, long_name = long_name, None
        text = name.decode(errors="replace")
        regular = kind == b"0" or (kind == b"\0" and not text.endswith("/"))
        out.append((text, regular, body))
    return out


def _zip_entries(data: bytes) -> list[tuple[str, bool, bytes]]:
    import io
    import zipfile

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ContextError("zip: not a valid zip file") from None
    out = []
    for info in z.infolist():
        mode = info.external_attr >> 16
        regular = not info.is_dir() and (mode == 0 or (mode & 0o170000) in (0, 0o100000))
        out.append((info.filename, regular, z.read(info) if regular else b""))
    return out


def _valid_path(p: str) -> None:
    import posixpath

    if p != "meta.json" and not p.startswith("tls/"):
        raise ContextError(f"{p}: unexpected context file")
    if posixpath.normpath(p) != p:
        raise ContextError(f"{p}: unexpected path format")
    if "\\" in p:
        raise ContextError(f"{p}: unexpected '\\' in path")


@app.command("import")
def import_context(args: Optional[List[str]] = typer.Argument(None, metavar="CONTEXT FILE|-")
                   ) -> None:
    """Import a context from a tar or zip file"""
    from . import fastjson

    name, source = _args(args, "import", "import CONTEXT FILE|-", 2, 2)
    store = _store()
    try:
        _check_new_name(store, name)
        if source == "-":
            data = sys.stdin.buffer.read(MAX_IMPORT + 1)
        else:
            with open(source, "rb") as f:
                data = f.read(MAX_IMPORT + 1)
        if len(data) > MAX_IMPORT:
            raise ContextError("read exceeds the defined limit")
        entries = _zip_entries(data) if data.startswith(b"PK\x03\x04") else _tar_entries(data)
        tls: dict[str, dict[str, bytes]] = {}
        imported = False
        for path, regular, body in entries:
            if not regular:
                continue
            _valid_path(path)
            if path == "meta.json":
                try:
                    meta = fastjson.loads(body)
                except ValueError as e:
                    raise ContextError(str(e)) from None
                if not isinstance(meta, dict):
                    raise ContextError("json: cannot unmarshal into Go value of type "
                                       "store.Metadata")
                meta = {**meta, "Name": name}
                meta.pop("name", None)
                store.primary.save(meta)
                imported = True
            else:
                ep, slash, fname = path[4:].partition("/")
                if not slash:
                    raise ContextError("archive format is invalid")
                tls.setdefault(ep, {})[fname] = body
        if not imported:
            raise ContextError("invalid context: no metadata found")
        store.primary.reset_tls(name, tls)
    except ContextError as e:
        _fail(e)
    except OSError as e:
        _fail(e)
    print(name)
    print(f'Successfully imported context "{name}"', file=sys.stderr)
