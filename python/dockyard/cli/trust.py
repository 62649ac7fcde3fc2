"""The `trust` command group (docker's Docker Content Trust commands): signed tags
and signers of a repository on a Notary server (DOCKER_CONTENT_TRUST_SERVER, else
the registry's host, notary.docker.io for Docker Hub), signing keys in
`<config>/trust/private`, and trusted metadata in `<config>/trust/tuf`, laid out
as docker's CLI keeps them. `<config>` is $DOCKYARD_CONFIG when set, else docker's
own ($DOCKER_CONFIG or ~/.docker), so both CLIs share keys and trusted roots."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .common import call, client, fail

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..distribution.trust.repository import Repository, Target
    from ..reference import Reference

app = typer.Typer(help="Manage trust on Docker images", no_args_is_help=True,
                  add_completion=False)
key_app = typer.Typer(help="Manage keys for signing Docker images", no_args_is_help=True,
                      add_completion=False)
signer_app = typer.Typer(help="Manage entities who can sign Docker images", no_args_is_help=True,
                         add_completion=False)
app.add_typer(key_app, name="key")
app.add_typer(signer_app, name="signer")

PROG = "dockyard"
NOTARY_SERVER = "https://notary.docker.io"
RELEASES = "targets/releases"
REPO_ADMIN = "Repo Admin"
VALID_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")
NAME_RULE = "must start with lowercase alphanumeric characters and can include \"-\" or \"_\" " \
    "after the first character"


# --- arguments ----------------------------------------------------------------------------


def arity(cmd: str, args: list[str] | None, usage: str, exactly: int = 0,
          at_least: int = 0) -> list[str]:
    """cobra's ExactArgs / RequiresMinArgs, as docker 28 words them (exit 1)."""
    args = list(args or [])
    if exactly and len(args) != exactly:
        need, hint = f"requires {exactly} argument{'s' if exactly > 1 else ''}", "Run"
    elif at_least and len(args) < at_least:
        need, hint = f"requires at least {at_least} argument{'s' if at_least > 1 else ''}", "See"
    else:
        return args
    fail(f"{PROG}: '{PROG} trust {cmd}' {need}\n\nUsage:  {PROG} trust {cmd} {usage}\n\n"
         f"{hint} '{PROG} trust {cmd} --help' for more information")


# --- where things live, passphrases ------------------------------------------------------


def config_dir() -> Path:
    from ..distribution.credentials import docker_config_dir

    d = os.environ.get("DOCKYARD_CONFIG")
    return Path(d) if d else docker_config_dir()


def trust_dir() -> Path:
    return config_dir() / "trust"


ROOT_KEY_WARNING = """You are about to create a new root signing key passphrase. This passphrase
will be used to protect the most sensitive key in your signing system. Please
choose a long, complex passphrase and be careful to keep the password and the
key file itself secure and backed up. It is highly recommended that you use a
password manager to generate the passphrase and keep it safe. There will be no
way to recover this key. You can find the key in your config directory."""


class Passphrases:
    """docker's GetPassphraseRetriever: the root key's passphrase from
    DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE, every other key's from
    DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE, else notary's prompts on stdout
    with answers read from stdin (without echo on a terminal), each remembered
    for its alias for the rest of the command."""

    ALIASES = {"root": "root", "snapshot": "repository", "targets": "repository",
               "default": "repository"}

    def __init__(self) -> None:
        self.cache: dict[str, str] = {}

    def __call__(self, name: str, alias: str, create: bool, attempt: int) -> tuple[str, bool]:
        from ..distribution.trust.errors import PassphraseError

        root = os.environ.get("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "")
        repo = os.environ.get("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "")
        v = root if alias == "root" else repo
        if v:
            return v, attempt > 1
        if attempt == 0:
            if alias == "root" and create:
                print(ROOT_KEY_WARNING)
            if alias in self.cache:
                return self.cache[alias], False
        elif not create:
            if attempt > 3:
                raise PassphraseError("Too many attempts", giveup=True)
            print("Passphrase incorrect. Please retry.")
        return self.ask(name, alias, create)

    def ask(self, name: str, alias: str, create: bool) -> tuple[str, bool]:
        from ..distribution.trust.errors import PassphraseError

        shown = self.ALIASES.get(alias, alias)
        short = name.rsplit("/", 1)[-1][:7] if len(name.rsplit("/", 1)[-1]) > 7 else ""
        with_id = f" with ID {short}" if short else ""
        sys.stdout.write(f"Enter passphrase for {'new ' if create else ''}{shown} key{with_id}: ")
        lines = StdinLines()
        answer = lines.readline()
        print()
        if answer is None:
            raise PassphraseError("EOF")
        answer = answer.strip()
        if create:
            if len(answer) < 8:
                print("Passphrase is too short. Please use a password manager to generate and "
                      "store a good random passphrase.")
                raise PassphraseError("Passphrase too short")
            sys.stdout.write(f"Repeat passphrase for new {shown} key{with_id}: ")
            again = lines.readline()
            print()
            if again is None:
                raise PassphraseError("EOF")
            if again.strip() != answer:
                print("Passphrases do not match. Please retry.")
                raise PassphraseError("The entered passphrases do not match")
        self.cache[alias] = answer
        return answer, False


class StdinLines:
    """Lines from stdin as notary reads a passphrase: from a terminal without
    echo; otherwise through a fresh 4 KiB bufio.Reader each time it asks, so
    what that buffer took in beyond the lines used is gone (piped answers after
    a rejected one are lost, as with docker)."""

    def __init__(self) -> None:
        self.buf = b""

    def readline(self) -> str | None:
        sys.stdout.flush()
        fd = sys.stdin.fileno()
        if os.isatty(fd):
            import termios

            old = termios.tcgetattr(fd)
            new = old[:]
            new[3] &= ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSADRAIN, new)
            try:
                line = sys.stdin.readline()
            finally:
                termios.tcsetattr(fd, termios.TCSADRAIN, old)
            return line if line.endswith("\n") else None
        while b"\n" not in self.buf:
            chunk = os.read(fd, 4096 - len(self.buf)) if len(self.buf) < 4096 else b""
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")


PASSPHRASES = Passphrases()


def key_store() -> Any:
    from ..distribution.trust.keys import KeyStore

    return KeyStore(trust_dir(), PASSPHRASES)


# --- references and repositories ---------------------------------------------------------


def parse_ref(name: str) -> Reference:
    from ..errors import InvalidReference
    from ..reference import parse_normalized

    try:
        return parse_normalized(name)
    except InvalidReference as e:
        fail(str(e))


def tag_of(ref: Reference) -> str:
    """docker's getTag: none for a digest reference, even with a tag."""
    return "" if ref.digest else (ref.tag or "")


def server_url(ref: Reference) -> str:
    """docker's trust.Server: DOCKER_CONTENT_TRUST_SERVER (https only), else
    notary.docker.io for Docker Hub, else the registry's own host."""
    from ..distribution.endpoints import DEFAULT_DOMAIN
    from ..distribution.trust.errors import TrustError

    s = os.environ.get("DOCKER_CONTENT_TRUST_SERVER")
    if s:
        if not s.startswith("https://"):
            raise TrustError(f"valid https URL required for trust server, got {s}")
        return s
    return NOTARY_SERVER if ref.domain == DEFAULT_DOMAIN else "https://" + ref.domain


def open_repo(ref: Reference, strict: bool = True, push: bool = True) -> Repository:
    """The repository's trust data client, authenticated with the registry's
    credentials for pull (and push); an unusable server setting exits with
    docker's message, or raises TrustError when not `strict`."""
    import urllib.parse

    from ..distribution import RegistryOptions
    from ..distribution.endpoints import is_insecure
    from ..distribution.trust.errors import TrustError
    from ..distribution.trust.repository import Repository
    from ..distribution.trust.server import NotaryServer

    try:
        url = server_url(ref)
    except TrustError as e:
        if strict:
            fail(str(e))
        raise
    # docker skips verifying the notary server's certificate for an insecure registry
    verify = not is_insecure(ref.domain, RegistryOptions())
    tls = config_dir() / "tls" / urllib.parse.urlsplit(url).netloc
    server = NotaryServer(url, tls, verify, credentials(ref), ref.name,
                          ("pull", "push") if push else ("pull",))
    return Repository(ref.name, server, trust_dir(), key_store())


def notary_error(name: str, e: Exception) -> str:
    """docker's trust.NotaryError wording."""
    from ..distribution.trust import errors as te

    if isinstance(e, te.RepositoryNotExist):
        return f"Error: remote trust data does not exist for {name}: {e.server} does not " \
               f"have trust data for {e.gun}"
    if isinstance(e, te.NetworkError):
        return f"Error: error contacting notary server: {e}"
    if isinstance(e, te.MetaNotFound):
        return f"Error: trust data missing for remote repository {name} or remote repository " \
               f"not found: {e}"
    if isinstance(e, te.ValidationError):
        return f"Warning: potential malicious behavior - trust data mismatch for remote " \
               f"repository {name}: {e}"
    if isinstance(e, te.KeyNotFound):
        return f"Error: signing keys for remote repository {name} not found: {e}"
    return str(e)


def show_warnings(repo: Repository) -> None:
    """notary's warnings as logrus prints them to a non-terminal stderr."""
    import datetime as dt

    now = dt.datetime.now().astimezone().replace(microsecond=0).isoformat()
    now = now.replace("+00:00", "Z")
    for w in repo.warnings:
        print(f'time="{now}" level=warning msg="{w}"', file=sys.stderr)
    repo.warnings.clear()


def signer_of(role: str) -> str:
    return REPO_ADMIN if role in ("targets", RELEASES) else role.removeprefix("targets/")


def released(role: str) -> bool:
    return role in ("targets", RELEASES)


def natural_key(s: str) -> list[Any]:
    """sortorder.NaturalLess: digit runs compare as numbers."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", s) if p]


def released_signatures(found: list[tuple[str, Target]]) -> list[dict[str, Any]]:
    """docker's matchReleasedSignatures: tags signed into targets or
    targets/releases, each with the other roles that signed the same digest."""
    rows: dict[tuple[str, str], list[str]] = {}
    for role, t in found:
        if released(role):
            rows[(t.name, t.sha256_hex)] = []
    for role, t in found:
        k = (t.name, t.sha256_hex)
        if k in rows and not released(role):
            rows[k].append(signer_of(role))
    out = [{"SignedTag": n, "Digest": d, "Signers": s} for (n, d), s in rows.items()]
    out.sort(key=lambda r: natural_key(r["SignedTag"]))
    return out


def lookup_trust_info(remote: str) -> tuple[list[dict[str, Any]], Repository]:
    from ..distribution.trust.errors import NoSuchTarget, TrustError
    from ..errors import InvalidReference
    from ..reference import parse_normalized

    try:
        ref = parse_normalized(remote)
        repo = open_repo(ref, strict=False, push=False)
    except (InvalidReference, TrustError) as e:
        raise LookupError(str(e)) from None
    try:
        repo.update()
        try:
            found = repo.targets_by_name(tag_of(ref))
        except NoSuchTarget:
            found = []
    except (TrustError, OSError, ValueError) as e:
        raise LookupError(f"no signatures or cannot access {remote}") from e
    # docker's three notary calls each update the repository, and warn again
    repo.warnings *= 3
    show_warnings(repo)
    return released_signatures(found), repo


def signer_keys(repo: Repository) -> dict[str, list[str]]:
    """Signer name -> key IDs, for the delegations other than releases."""
    return {signer_of(r.name): r.keyids for r in repo.delegation_roles()
            if r.name != RELEASES}


# --- inspect ------------------------------------------------------------------------------


@app.command("inspect")
def inspect(args: Optional[List[str]] = typer.Argument(None,
                                                       metavar="IMAGE[:TAG] [IMAGE[:TAG]...]"),
            pretty: bool = typer.Option(False, "--pretty",
                                        help="Print the information in a human friendly format")
            ) -> None:
    """Return low-level information about keys and signatures"""
    names = arity("inspect", args, "IMAGE[:TAG] [IMAGE[:TAG]...]", at_least=1)
    if pretty:
        for i, remote in enumerate(names):
            try:
                pretty_print(remote)
            except LookupError as e:
                fail(str(e))
            if i < len(names) - 1:
                sys.stdout.write("\n\n")
        return
    from .output import print_json_indent

    found, errors = [], []
    for remote in names:
        try:
            found.append(repo_trust_info(remote))
        except LookupError as e:
            errors.append(str(e))
    print_json_indent(found)
    if errors:
        fail("\n".join(errors))


def repo_trust_info(remote: str) -> dict[str, Any]:
    rows, repo = lookup_trust_info(remote)
    for r in rows:
        if not r["Signers"]:
            r["Signers"] = [REPO_ADMIN]
    signers = [{"Name": n, "Keys": [{"ID": k} for k in ids]}
               for n, ids in signer_keys(repo).items()]
    signers.sort(key=lambda s: s["Name"], reverse=True)
    admin = []
    for role in repo.base_roles():
        label = {"root": "Root", "targets": "Repository"}.get(role.name)
        if label:
            admin.append({"Name": label, "Keys": [{"ID": k} for k in role.keyids]})
    admin.sort(key=lambda s: s["Name"], reverse=True)
    for s in signers + admin:  # Keys is omitempty
        if not s["Keys"]:
            del s["Keys"]
    return {"Name": remote, "SignedTags": rows, "Signers": signers, "AdministrativeKeys": admin}


def pretty_print(remote: str) -> None:
    from .output import print_rows

    rows, repo = lookup_trust_info(remote)
    out = sys.stdout
    if rows:
        out.write(f"\nSignatures for {remote}\n\n")
        out.flush()
        print_rows("table {{.SignedTag}}\t{{.Digest}}\t{{.Signers}}",
                   [{"SignedTag": r["SignedTag"], "Digest": r["Digest"],
                     "Signers": ", ".join(sorted(r["Signers"] or [f"({REPO_ADMIN})"]))}
                    for r in rows],
                   {"SignedTag": "SIGNED TAG", "Digest": "DIGEST", "Signers": "SIGNERS"})
    else:
        out.write(f"\nNo signatures for {remote}\n\n")
    signers = signer_keys(repo)
    if signers:
        out.write(f"\nList of signers and their keys for {remote}\n\n")
        out.flush()
        print_rows("table {{.Signer}}\t{{.Keys}}",
                   [{"Signer": n, "Keys": ", ".join(k[:12] for k in sorted(ids))}
                    for n, ids in sorted(signers.items(), key=lambda x: natural_key(x[0]))],
                   {"Signer": "SIGNER", "Keys": "KEYS"})
    out.write(f"\nAdministrative keys for {remote}\n\n")
    for role in sorted(repo.base_roles(), key=lambda r: r.name, reverse=True):
        label = {"root": "Root Key", "targets": "Repository Key"}.get(role.name)
        if label:
            out.write(f"  {label}:\t{', '.join(sorted(role.keyids))}\n")
    out.flush()


# --- keys ---------------------------------------------------------------------------------


@key_app.command("generate")
def key_generate(args: Optional[List[str]] = typer.Argument(None, metavar="NAME"),
                 dir: str = typer.Option("", "--dir", help="Directory to generate key in, "
                                         "defaults to current directory")) -> None:
    """Generate and load a signing key-pair"""
    [name] = arity("key generate", args, "NAME", exactly=1)
    from ..distribution.trust.errors import PassphraseError
    from ..distribution.trust.keys import PrivateKey, public_pem

    target = dir or os.getcwd()
    if not VALID_NAME.fullmatch(name):
        fail(f'key name "{name}" {NAME_RULE}')
    if not os.path.exists(target):
        fail(f'public key path does not exist: "{target}"')
    pub_path = os.path.join(target, f"{name}.pub")
    if os.path.exists(pub_path):
        fail(f'public key file already exists: "{pub_path}"')
    print(f"Generating key for {name}...", flush=True)
    key = PrivateKey.generate()
    try:
        key_store().add(key, name)
    except PassphraseError as e:
        sys.stdout.write(str(e))
        sys.stdout.flush()
        fail(f"failed to generate key for {name}: {e}")
    try:
        fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(public_pem(key.public, name))
    except OSError as e:
        fail(f"failed to write public key to {pub_path}: {e.strerror}")
    print("Successfully generated and loaded private key. Corresponding public key available:",
          pub_path)


@key_app.command("load")
def key_load(args: Optional[List[str]] = typer.Argument(None, metavar="KEYFILE"),
             name: str = typer.Option("signer", "--name", help="Name for the loaded key")) -> None:
    """Load a private key file for signing"""
    [keyfile] = arity("key load", args, "[OPTIONS] KEYFILE", exactly=1)
    from ..distribution.trust.errors import TrustError
    from ..distribution.trust.keys import pem_decode, parse_private_pem, private_key_role

    if name and not VALID_NAME.fullmatch(name):
        fail(f'key name "{name}" {NAME_RULE}')
    print(f'Loading key from "{keyfile}"...', flush=True)
    try:
        st = os.stat(keyfile)
        if st.st_mode & 0o077:
            fail(f"refusing to load key from {keyfile}: private key file {keyfile} must not "
                 "be readable or writable by others")
        with open(keyfile, "rb") as f:
            raw = f.read()
    except OSError as e:
        op = "open" if isinstance(e, PermissionError) else "stat"
        fail(f"refusing to load key from {keyfile}: {_go_os_error(op, keyfile, e)}")
    if private_key_role(raw) is None:
        fail(f"error importing key from {keyfile}: provided file {keyfile} is not a supported "
             "private key - to add a signer's public key use docker trust signer add")
    block = pem_decode(raw)
    encrypted = block is not None and (block.type == "ENCRYPTED PRIVATE KEY"
                                       or "DEK-Info" in block.headers)
    try:
        key = parse_private_pem(raw, PASSPHRASES)
    except (ValueError, TrustError):
        fail(f"error importing key from {keyfile}: cannot load key from provided file "
             f"{keyfile}: could not decrypt key")
    # docker 28 decrypts an encrypted key file to bare DER, in which its importer
    # then finds no PEM block: it reports success and stores nothing. So do we.
    if not (encrypted and block is not None and "path" not in block.headers):
        # notary's ImportKeys: --name only where the file names no role itself
        headers = block.headers if block is not None else {}
        try:
            key_store().add(key, headers.get("role") or name or "signer", headers.get("gun", ""))
        except TrustError as e:
            fail(f"error importing key from {keyfile}: {e}")
    print("Successfully imported key from", keyfile)


def _go_os_error(op: str, path: str, e: OSError) -> str:
    msg = {2: "no such file or directory", 13: "permission denied"}.get(e.errno or 0,
                                                                         e.strerror or str(e))
    return f"{op} {path}: {msg}"


# --- sign ---------------------------------------------------------------------------------


def or_generate_key(repo: Repository, role: str) -> Any:
    """docker's getOrGenerateNotaryKey: the first key (by ID) stored for the role
    (a delegation's under its signer name), else a new one."""
    from ..distribution.trust.keys import PrivateKey

    name = role.removeprefix("targets/")
    ids = repo.keys.ids_for_role(name)
    if ids:
        return repo.keys.get(ids[0]).public
    key = PrivateKey.generate()
    repo.keys.add(key, name)
    return key.public


def add_staged_signer(repo: Repository, role: str, keys: list[Any]) -> None:
    from ..distribution.trust.errors import TrustError

    if role.count("/") < 1 or not role.removeprefix("targets/"):
        raise TrustError(f"tuf: invalid role {role}. invalid delegation role name")
    repo.add_delegation(role, keys, [""])
    repo.add_delegation(RELEASES, keys, [""])


def root_key_id(repo: Repository) -> str:
    """The root key to initialise a repository with: the first stored (docker
    shares one root key between repositories), else a new one."""
    from ..distribution.trust.keys import PrivateKey

    ids = repo.keys.ids_for_role("root")
    return ids[0] if ids else repo.keys.add(PrivateKey.generate(), "root")


def local_image_exists(name: str) -> None:
    from .client import path_quote

    call(lambda: client().get_json(f"/images/{path_quote(name)}/json"))


def credentials(ref: Reference) -> Any:
    """The registry's AuthConfig from the config files (docker's AuthResolver)."""
    from ..distribution import credentials as stored
    from ..distribution.auth import AuthConfig

    try:
        return stored.lookup(ref.domain)
    except Exception:  # noqa: BLE001 - unreadable or no credentials: anonymous
        return AuthConfig()


def username(ref: Reference) -> str:
    return credentials(ref).username or ""


@app.command("sign")
def sign(args: Optional[List[str]] = typer.Argument(None, metavar="IMAGE:TAG"),
         local: bool = typer.Option(False, "--local", help="Sign a locally tagged image")) -> None:
    """Sign an image"""
    [image] = arity("sign", args, "IMAGE:TAG", exactly=1)
    from ..distribution.trust.errors import NoSuchTarget, RepositoryNotExist, TrustError

    ref = parse_ref(image)
    tag = tag_of(ref)
    if not tag:
        fail("cannot use a digest reference for IMAGE:TAG" if ref.digest
             else f"no tag specified for {image}")
    repo = open_repo(ref)
    try:
        repo.update()
    except RepositoryNotExist:
        local_image_exists(image)
        user = username(ref)
        role = f"targets/{user}" if user else "targets"
        try:
            repo.initialize(root_key_id(repo))
            key = or_generate_key(repo, role)
            try:
                add_staged_signer(repo, role, [key])
            except TrustError as e:
                fail(f"could not add signer to repo: {role.removeprefix('targets/')}: {e}")
            repo.publish()
        except (TrustError, OSError) as e:
            fail(notary_error(ref.name, e))
        print("Created signer:", user)
        print("Finished initializing signed repository for", image, flush=True)
        repo = open_repo(ref)
        try:
            repo.update()
        except (TrustError, OSError) as e:
            fail(notary_error(ref.name, e))
    except (TrustError, OSError) as e:
        fail(notary_error(ref.name, e))
    target = None
    try:
        target = next(t for role, t in repo.targets_by_name(tag) if released(role))
    except (NoSuchTarget, StopIteration):
        pass
    if target is None or local:
        local_image_exists(image)
        print(f"Signing and pushing trust data for local image {image}, may overwrite remote "
              "trust data", file=sys.stderr, flush=True)
        push_and_sign(ref, tag)
        return
    print("Signing and pushing trust metadata for", image, flush=True)
    try:
        existing = released_signatures(repo.targets_by_name(tag))
        repo.add_target(target, repo.signable_roles(target.name))
        row = existing[0] if existing else {"SignedTag": "", "Digest": "", "Signers": []}
        print(f"Existing signatures for tag {row['SignedTag']} digest {row['Digest']} from:\n"
              + ", ".join(sorted(row["Signers"])), flush=True)
        repo.publish()
    except (TrustError, OSError) as e:
        fail(f"failed to sign {ref.name}:{tag}: {e}")
    print(f"Successfully signed {ref.name}:{tag}")


def push_and_sign(ref: Reference, tag: str) -> None:
    """docker's ImagePush + PushTrustedReference: push through the daemon, sign
    the digest and size its aux message reports."""
    import base64
    import json

    from ..distribution.trust.errors import RepositoryNotExist, TrustError
    from ..distribution.trust.repository import Target
    from .client import path_quote
    from .progress import StreamError, show
    from .transfer import auth_header

    def lines():
        resp = client().request("POST", f"/images/{path_quote(ref.familiar_name)}/push",
                                {"tag": tag}, None, auth_header(str(ref)))
        try:
            for line in resp.iter_lines():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
        finally:
            resp.close()

    try:
        result = call(lambda: show(lines()))
    except StreamError as e:
        fail(str(e))
    digest = str(result.get("Digest", ""))
    if not result.get("Tag") or not digest.startswith("sha256:"):
        fail("no targets found, provide a specific tag in order to sign it")
    target = Target(str(result["Tag"]), {"sha256": base64.b64encode(
        bytes.fromhex(digest[7:])).decode()}, int(result.get("Size", 0)))
    print("Signing and pushing trust metadata", flush=True)
    repo = open_repo(ref)
    try:
        try:
            repo.update()
            roles = repo.signable_roles(target.name)
        except RepositoryNotExist:
            repo.initialize(root_key_id(repo))
            print(f'Finished initializing "{ref.name}"', flush=True)
            roles = ["targets"]
        repo.add_target(target, roles)
        repo.publish()
    except (TrustError, OSError) as e:
        fail(notary_error(ref.name, TrustError(f"failed to sign {ref.name}:{tag}: {e}")))
    print(f"Successfully signed {ref.name}:{tag}")


# --- revoke -------------------------------------------------------------------------------


def confirm(message: str) -> bool:
    """docker's prompt.Confirm: `y` or `Y` answers yes."""
    sys.stdout.write(f"{message} [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    return answer in ("y", "Y")


@app.command("revoke")
def revoke(args: Optional[List[str]] = typer.Argument(None, metavar="IMAGE[:TAG]"),
           yes: bool = typer.Option(False, "-y", "--yes", help="Do not prompt for confirmation")
           ) -> None:
    """Remove trust for an image"""
    [image] = arity("revoke", args, "[OPTIONS] IMAGE[:TAG]", exactly=1)
    from ..distribution.trust.errors import TrustError

    ref = parse_ref(image)
    tag = tag_of(ref)
    if not tag and ref.digest:
        fail("cannot use a digest reference for IMAGE:TAG")
    if not tag and not yes:
        if not confirm(f"Confirm you would like to delete all signature data for {image}?"):
            return  # docker's cancelled error: nothing more is printed, and it exits 0
    repo = open_repo(ref)
    try:
        repo.update()
        if tag:
            _, target = repo.target_by_name(tag, RELEASES, "targets")
            targets = [target]
        else:
            targets = [t for _, t in repo.list_targets(RELEASES, "targets")]
            if not targets:
                raise TrustError("no signed tags to remove")
        for t in targets:
            repo.remove_target(t.name, repo.signable_roles(t.name))
        repo.publish()
    except (TrustError, OSError) as e:
        fail(f"could not remove signature for {image}: {e}")
    print(f"Successfully deleted signature for {image}")


# --- signers ------------------------------------------------------------------------------


@signer_app.command("add")
def signer_add(args: Optional[List[str]] = typer.Argument(
                   None, metavar="NAME REPOSITORY [REPOSITORY...]"),
               key: List[str] = typer.Option([], "--key",
                                             help="Path to the signer's public key file")) -> None:
    """Add a signer"""
    name, *repos = arity("signer add", args, "OPTIONS NAME REPOSITORY [REPOSITORY...] ",
                         at_least=2)
    from ..distribution.trust.keys import parse_public_pem

    if not VALID_NAME.fullmatch(name):
        fail(f'signer name "{name}" {NAME_RULE}')
    if name == "releases":
        fail("releases is a reserved keyword, use a different signer name")
    if not key:
        fail("path to a public key must be provided using the `--key` flag")
    pubs = []
    for path in key:
        try:
            with open(path, "rb") as f:
                raw = f.read(1 << 20)
        except OSError as e:
            fail(f"unable to read public key from file: {_go_os_error('open', path, e)}")
        try:
            pubs.append(parse_public_pem(raw))
        except ValueError as e:
            fail(f"could not parse public key from file: {path}: {e}")
    failed = []
    for r in repos:
        print(f'Adding signer "{name}" to {r}...', flush=True)
        err = add_signer_to_repo(name, r, pubs)
        if err:
            print(err + "\n", file=sys.stderr, flush=True)
            failed.append(r)
        else:
            print(f"Successfully added signer: {name} to {r}\n", flush=True)
    if failed:
        fail("failed to add signer to: " + ", ".join(failed))


def add_signer_to_repo(name: str, remote: str, pubs: list[Any]) -> str | None:
    """Add the signer to one repository (initialised first if need be); None, or
    the error to print."""
    from ..distribution.trust.errors import RepositoryNotExist, TrustError
    from ..errors import InvalidReference
    from ..reference import parse_normalized

    try:
        ref = parse_normalized(remote)
        repo = open_repo(ref, strict=False)
        repo.update()
    except InvalidReference as e:
        return str(e)
    except RepositoryNotExist:
        print(f"Initializing signed repository for {remote}...", flush=True)
        try:
            repo.initialize(root_key_id(repo))
        except (TrustError, OSError) as e:
            return notary_error(remote, e)
        print(f'Successfully initialized "{remote}"', flush=True)
    except (TrustError, OSError) as e:
        return notary_error(remote, e)
    try:
        add_staged_signer(repo, f"targets/{name}", pubs)
    except TrustError as e:
        return f"could not add signer to repo: {name}: {e}"
    try:
        repo.publish()
    except (TrustError, OSError) as e:
        return str(e)
    return None


@signer_app.command("remove")
def signer_remove(args: Optional[List[str]] = typer.Argument(
                      None, metavar="NAME REPOSITORY [REPOSITORY...]"),
                  force: bool = typer.Option(False, "-f", "--force",
                                             help="Do not prompt for confirmation before "
                                                  "removing the most recent signer")) -> None:
    """Remove a signer"""
    name, *repos = arity("signer remove", args, "[OPTIONS] NAME REPOSITORY [REPOSITORY...]",
                         at_least=2)
    failed = []
    for r in repos:
        print(f'Removing signer "{name}" from {r}...', flush=True)
        err = remove_single_signer(r, name, force)
        if err:
            print(err + "\n", file=sys.stderr, flush=True)
            failed.append(r)
    if failed:
        fail("error removing signer from: " + ", ".join(failed))


def remove_single_signer(remote: str, name: str, force: bool) -> str | None:
    """Remove the signer from one repository; None, or the error to print."""
    from ..distribution.trust.errors import TrustError
    from ..errors import InvalidReference
    from ..reference import parse_normalized

    try:
        ref = parse_normalized(remote)
    except InvalidReference as e:
        return str(e)
    role_name = f"targets/{name}"
    if role_name == RELEASES:
        return "releases is a reserved keyword and cannot be removed"
    try:
        repo = open_repo(ref, strict=False)
    except TrustError as e:
        return str(e)
    try:
        repo.update()
    except (TrustError, OSError) as e:
        return f"error retrieving signers for {remote}: {e}"
    role = next((r for r in repo.delegation_roles() if r.name == role_name), None)
    if role is None:
        return f"no signer {name} for repository {remote}"
    sigs = repo.role_signatures(RELEASES)
    if not sigs:
        return "all signed tags are currently revoked, use docker trust sign to fix"
    left = len(sigs) - sum(1 for s in sigs for k in role.keyids if s.get("keyid") == k)
    # As docker 28's maybePromptForSignerRemoval: only a confirmed removal of the
    # last releases signer goes ahead; otherwise (even with --force) nothing changes.
    last = left < repo.role_threshold(RELEASES)
    if not (last and not force and confirm(
            f'The signer "{name}" signed the last released version of {remote}. '
            f"Removing this signer will make {remote} unpullable. "
            "Are you sure you want to continue?")):
        return None
    try:
        repo.remove_delegation_keys(RELEASES, role.keyids)
        repo.remove_delegation(role_name)
        show_warnings(repo)
        repo.publish()
    except (TrustError, OSError) as e:
        return str(e)
    print(f"Successfully removed {name} from {remote}\n", flush=True)
    return None
