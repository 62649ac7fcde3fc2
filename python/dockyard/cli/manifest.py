"""The `manifest` command group (docker's `manifest` commands): inspect image
manifests and lists in a registry, and build manifest lists locally (create,
annotate) to push them. These talk to the registry from the client, with the
credentials of config.json, and keep lists where docker's CLI keeps them, so
either CLI can finish a list the other began."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, NoReturn, Optional

import typer

if TYPE_CHECKING:
    from ..distribution.manifestclient import Fetched, ManifestClient
    from ..reference import Reference
    from .manifeststore import ImageManifest

PROG = "dockyard manifest"
app = typer.Typer(help="Manage Docker image manifests and manifest lists", no_args_is_help=True,
                  add_completion=False)

# docker's list of os/arch pairs annotate accepts (Go's supported ports, plus s390x).
VALID_OS_ARCH = {
    "darwin": {"386", "amd64", "arm", "arm64"}, "dragonfly": {"amd64"},
    "freebsd": {"386", "amd64", "arm"},
    "linux": {"386", "amd64", "arm", "arm64", "ppc64le", "mips64", "mips64le", "riscv64",
              "s390x"},
    "netbsd": {"386", "amd64", "arm"}, "openbsd": {"386", "amd64", "arm"},
    "plan9": {"386", "amd64"}, "solaris": {"amd64"}, "windows": {"386", "amd64"},
}


def _fail(msg: str) -> NoReturn:
    print(msg, file=sys.stderr)
    raise SystemExit(1)


def _check_args(cmd: str, usage: str, args: list[str], lo: int, hi: int | None) -> None:
    """Cobra's argument-count errors, worded as docker 28 words them."""
    n = len(args)
    if n >= lo and (hi is None or n <= hi):
        return
    plural = "s" if lo != 1 else ""
    if hi is None:
        msg, see = f"requires at least {lo} argument{plural}", "See"
    elif lo == hi:
        msg, see = f"requires {lo} argument{plural}", "Run"
    else:
        msg, see = f"requires at least {lo} and at most {hi} arguments", "Run"
    _fail(f"dockyard: '{PROG} {cmd}' {msg}\n\nUsage:  {PROG} {cmd} {usage}\n\n"
          f"{see} '{PROG} {cmd} --help' for more information")


def _normalize(s: str) -> Reference:
    """docker's normalizeReference: a name without a digest gets `:latest`."""
    from ..reference import parse_normalized

    ref = parse_normalized(s)
    return ref if ref.digest else ref.with_default_tag()


def _registry(insecure: bool) -> ManifestClient:
    from ..distribution import credentials
    from ..distribution.manifestclient import ManifestClient

    return ManifestClient(credentials.lookup, insecure)


def _from_fetched(f: Fetched) -> ImageManifest:
    from .manifeststore import ImageManifest

    desc = {"mediaType": f.media_type, "digest": f.digest, "size": len(f.raw),
            "platform": f.platform}
    return ImageManifest(f.ref, desc, f.raw, f.raw)


def _errors() -> tuple[type[BaseException], ...]:
    from ..errors import DockyardError
    from .manifeststore import NotFound

    return (DockyardError, NotFound, ValueError, OSError, KeyError)


def _out(data: bytes) -> None:
    sys.stdout.write(data.decode("utf-8", "replace") + "\n")


# --- what inspect prints ------------------------------------------------------


def _list_descriptor(target: Reference, m: ImageManifest) -> dict:
    """An entry of the list pushed (or shown) for `target`."""
    from ..reference import is_digest

    if m.ref.domain != target.domain:
        raise ValueError("cannot use source images from a different registry than the target "
                         f"image: {m.ref.domain} != {target.domain}")
    d = m.descriptor
    out: dict = {}
    if d.get("mediaType"):
        out["mediaType"] = d["mediaType"]
    if d.get("size"):
        out["size"] = int(d["size"])
    if d.get("digest"):
        out["digest"] = d["digest"]
    p = d.get("platform") or {}
    spec: dict = {"architecture": p.get("architecture") or "", "os": p.get("os") or ""}
    for k in ("os.version", "os.features", "variant"):
        if p.get(k):
            spec[k] = p[k]
    out["platform"] = spec
    if not is_digest(str(d.get("digest") or "")):
        raise ValueError(f'digest parse of image "{m.ref}" failed: invalid checksum digest '
                         "format")
    return out


def _list_bytes(descs: list[dict]) -> tuple[str, bytes]:
    """docker's manifestlist.FromDescriptors: an OCI index when the first entry
    is an OCI manifest, else a Docker manifest list; three-space indented."""
    from ..mediatypes import DOCKER_LIST, OCI_INDEX, OCI_MANIFEST
    from .gojson import marshal_indent

    media = OCI_INDEX if descs and descs[0].get("mediaType") == OCI_MANIFEST else DOCKER_LIST
    return media, marshal_indent({"schemaVersion": 2, "mediaType": media, "manifests": descs},
                                 "   ")


def _print_manifest(m: ImageManifest, verbose: bool) -> None:
    from .gojson import indent, marshal_indent

    if verbose:
        _out(marshal_indent(m.to_go(), "\t"))
        return
    if not m.payload:
        raise ValueError(f"{m.ref} has no payload")
    _out(indent(m.payload, "", "\t"))


def _print_list(ref: Reference, entries: list[ImageManifest], verbose: bool) -> None:
    from .gojson import marshal_indent

    if verbose:
        _out(marshal_indent([m.to_go() for m in entries], "\t"))
        return
    descs = []
    for m in entries:
        try:
            descs.append(_list_descriptor(ref.trimmed(), m))
        except ValueError as e:
            raise ValueError(f"failed to assemble ManifestDescriptor: {e}") from None
    _out(_list_bytes(descs)[1])


# --- commands -------------------------------------------------------------------


@app.command("inspect")
def inspect(args: Optional[List[str]] = typer.Argument(None, metavar="[MANIFEST_LIST] MANIFEST"),
            insecure: bool = typer.Option(False, "--insecure",
                                          help="Allow communication with an insecure registry"),
            verbose: bool = typer.Option(False, "-v", "--verbose",
                                         help="Output additional info including layers and "
                                              "platform")) -> None:
    """Display an image manifest, or manifest list"""
    args = args or []
    _check_args("inspect", "[OPTIONS] [MANIFEST_LIST] MANIFEST", args, 1, 2)
    from .manifeststore import NotFound, Store

    try:
        ref = _normalize(args[-1])
        store = Store()
        if len(args) == 2:
            _print_manifest(store.get(_normalize(args[0]), ref), verbose)
            return
        try:
            local = store.get_list(ref)
        except (NotFound, ValueError, KeyError, OSError):
            pass  # docker looks in the registry when the local list won't read
        else:
            _print_list(ref, local, verbose)
            return
        registry = _registry(insecure)
        try:
            image = registry.get_manifest(ref)
        except _errors():
            pass  # a list, or nothing: docker asks for a list next and reports that
        else:
            _print_manifest(_from_fetched(image), verbose)
            return
        entries = [_from_fetched(f) for f in registry.get_manifest_list(ref)]
        _print_list(ref, entries, verbose)
    except _errors() as e:
        _fail(str(e))


@app.command("create")
def create(args: Optional[List[str]] = typer.Argument(None,
                                                      metavar="MANIFEST_LIST MANIFEST..."),
           amend: bool = typer.Option(False, "-a", "--amend",
                                      help="Amend an existing manifest list"),
           insecure: bool = typer.Option(False, "--insecure",
                                         help="Allow communication with an insecure registry"),
           ) -> None:
    """Create a local manifest list for annotating and pushing to a registry"""
    args = args or []
    _check_args("create", "MANIFEST_LIST MANIFEST [MANIFEST...]", args, 2, None)
    from ..errors import InvalidReference
    from .manifeststore import NotFound, Store

    try:
        try:
            target = _normalize(args[0])
        except InvalidReference as e:
            _fail(f"error parsing name for manifest list {args[0]}: {e}")
        store = Store()
        try:
            store.get_list(target)
        except NotFound:
            pass
        else:
            if not amend:
                _fail("refusing to amend an existing manifest list with no --amend flag")
        registry = None
        for name in args[1:]:
            ref = _normalize(name)
            try:
                image = store.get(target, ref)
                if not image.raw:
                    raise NotFound(ref)
            except NotFound:
                registry = registry or _registry(insecure)
                image = _from_fetched(registry.get_manifest(ref))
            store.save(target, ref, image)
    except _errors() as e:
        _fail(str(e))
    print(f"Created manifest list {target}")


@app.command("annotate")
def annotate(args: Optional[List[str]] = typer.Argument(None,
                                                        metavar="MANIFEST_LIST MANIFEST"),
             arch: str = typer.Option("", "--arch", help="Set architecture"),
             os_: str = typer.Option("", "--os", help="Set operating system"),
             os_features: Optional[List[str]] = typer.Option(
                 None, "--os-features", help="Set operating system feature"),
             os_version: str = typer.Option("", "--os-version",
                                            help="Set operating system version"),
             variant: str = typer.Option("", "--variant", help="Set architecture variant"),
             ) -> None:
    """Add additional information to a local image manifest"""
    args = args or []
    _check_args("annotate", "[OPTIONS] MANIFEST_LIST MANIFEST", args, 2, 2)
    from ..errors import InvalidReference
    from .manifeststore import NotFound, Store

    try:
        try:
            target = _normalize(args[0])
        except InvalidReference as e:
            _fail(f"annotate: error parsing name for manifest list {args[0]}: {e}")
        try:
            ref = _normalize(args[1])
        except InvalidReference as e:
            _fail(f"annotate: error parsing name for manifest {args[1]}: {e}")
        store = Store()
        try:
            image = store.get(target, ref)
        except NotFound:
            _fail(f"manifest for image {args[1]} does not exist in {args[0]}")
        p = dict(image.descriptor.get("platform") or {})
        if os_:
            p["os"] = os_
        if arch:
            p["architecture"] = arch
        features = list(p.get("os.features") or [])
        for value in os_features or []:
            for f in value.split(","):  # a Go string slice: comma-separated, repeatable
                if f not in features:
                    features.append(f)
        if features:
            p["os.features"] = features
        if variant:
            p["variant"] = variant
        if os_version:
            p["os.version"] = os_version
        if p.get("architecture", "") not in VALID_OS_ARCH.get(p.get("os", ""), ()):
            _fail(f"manifest entry for image has unsupported os/arch combination: "
                  f"{os_}/{arch}")
        image.descriptor = {**image.descriptor, "platform": p}
        store.save(target, ref, image)
    except _errors() as e:
        _fail(str(e))


@app.command("push")
def push(args: Optional[List[str]] = typer.Argument(None, metavar="MANIFEST_LIST"),
         insecure: bool = typer.Option(False, "--insecure",
                                       help="Allow push to an insecure registry"),
         purge: bool = typer.Option(False, "-p", "--purge",
                                    help="Remove the local manifest list after push")) -> None:
    """Push a manifest list to a repository"""
    args = args or []
    _check_args("push", "[OPTIONS] MANIFEST_LIST", args, 1, 1)
    from ..reference import Reference
    from .gojson import indent
    from .manifeststore import Store, sha256

    try:
        target = _normalize(args[0])
        store = Store()
        entries = store.get_list(target)
        if not entries:
            _fail(f"{target} not found")
        descs = []
        for m in entries:
            p = m.descriptor.get("platform") or {}
            if not p.get("architecture") or not p.get("os"):
                _fail(f"manifest {m.ref} must have an OS and Architecture to be pushed to a "
                      "registry")
            descs.append(_list_descriptor(target.trimmed(), m))
        media, raw_list = _list_bytes(descs)
        # Entries from other repositories: their blobs are mounted, then their
        # manifests put by digest into the target repository.
        blobs: list[tuple[str, str, str]] = []
        copies: list[tuple[Reference, ImageManifest, bytes]] = []
        for m in entries:
            if m.ref.path == target.path:
                continue
            os_name = (m.descriptor.get("platform") or {}).get("os") or ""
            blobs += [(m.ref.path, d, os_name) for d in m.blobs()]
            raw = m.raw or indent(m.payload, "", "  " if m.is_oci else "   ")
            want, got = m.descriptor.get("digest"), sha256(raw)
            if want != got:
                _fail(f"internal digest mismatch for {m.ref}: expected {want}, got {got}")
            copies.append((Reference(target.domain, target.path, None, got), m, raw))
        registry = _registry(insecure)
        sources = sorted({path for path, _, _ in blobs})
        for path, digest, os_name in blobs:
            if not registry.mount_blob(target, sources, path, digest) and os_name != "windows":
                _fail(f"error mounting {path}@{digest} to {target}")
        for ref, m, raw in copies:
            got = registry.put_manifest(ref, sources, m.media_type, raw)
            print(f"Pushed ref {ref} with digest: {got}")
        print(registry.put_manifest(target, sources, media, raw_list))
        if purge:
            store.remove(target)
    except _errors() as e:
        _fail(str(e))


@app.command("rm")
def rm(args: Optional[List[str]] = typer.Argument(None, metavar="MANIFEST_LIST...")) -> None:
    """Delete one or more manifest lists from local storage"""
    args = args or []
    _check_args("rm", "MANIFEST_LIST [MANIFEST_LIST...]", args, 1, None)
    from .manifeststore import Store

    store = Store()
    errors = []
    for name in args:
        try:
            target = _normalize(name)
            store.get_list(target)
            store.remove(target)
        except _errors() as e:
            errors.append(str(e))
    if errors:
        _fail("\n".join(errors))
