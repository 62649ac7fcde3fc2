"""What the trust commands share: where keys and metadata live, passphrases
(docker's retriever: environment, else notary's prompts), references, the
notary repository client for one, docker's wording of notary's errors and
warnings, and the helpers several commands use."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ..common import fail

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ...distribution.trust.repository import Repository, Target
    from ...reference import Reference

PROG = "dockyard"
NOTARY_SERVER = "https://notary.docker.io"
RELEASES = "targets/releases"
REPO_ADMIN = "Repo Admin"
VALID_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")
NAME_RULE = "must start with lowercase alphanumeric characters and can include \"-\" or \"_\" " \
    "after the first character"


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


def config_dir() -> Path:
    """$DOCKYARD_CONFIG, else docker's config dir: keys and trusted roots are shared."""
    from ...distribution.credentials import docker_config_dir

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
        from ...distribution.trust.errors import PassphraseError

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
        from ...distribution.trust.errors import PassphraseError

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
    from ...distribution.trust.keys import KeyStore

    return KeyStore(trust_dir(), PASSPHRASES)


def parse_ref(name: str) -> Reference:
    from ...errors import InvalidReference
    from ...reference import parse_normalized

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
    from ...distribution.endpoints import DEFAULT_DOMAIN
    from ...distribution.trust.errors import TrustError

    s = os.environ.get("DOCKER_CONTENT_TRUST_SERVER")
    if s:
        if not s.startswith("https://"):
            raise TrustError(f"valid https URL required for trust server, got {s}")
        return s
    return NOTARY_SERVER if ref.domain == DEFAULT_DOMAIN else "https://" + ref.domain


def credentials(ref: Reference) -> Any:
    """The registry's AuthConfig from the config files (docker's AuthResolver)."""
    from ...distribution import credentials as stored
    from ...distribution.auth import AuthConfig

    try:
        return stored.lookup(ref.domain)
    except Exception:  # noqa: BLE001 - unreadable or no credentials: anonymous
        return AuthConfig()


def username(ref: Reference) -> str:
    return credentials(ref).username or ""


def open_repo(ref: Reference, strict: bool = True, push: bool = True) -> Repository:
    """The repository's trust data client, authenticated with the registry's
    credentials for pull (and push); an unusable server setting exits with
    docker's message, or raises TrustError when not `strict`."""
    import urllib.parse

    from ...distribution import RegistryOptions
    from ...distribution.endpoints import is_insecure
    from ...distribution.trust.errors import TrustError
    from ...distribution.trust.repository import Repository
    from ...distribution.trust.server import NotaryServer

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
    from ...distribution.trust import errors as te

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


def show_warnings(repo: Repository, times: int = 1) -> None:
    """The last update's warnings as logrus prints them to a non-terminal
    stderr, `times` times: once for each notary call of docker's (each updates)."""
    for _ in range(times):
        log_warnings(repo.warnings)


def show_change_warnings(repo: Repository) -> None:
    log_warnings(repo.change_warnings)
    repo.change_warnings.clear()


def log_warnings(messages: list[str]) -> None:
    import datetime as dt

    now = dt.datetime.now().astimezone().replace(microsecond=0).isoformat()
    now = now.replace("+00:00", "Z")
    for w in messages:
        print(f'time="{now}" level=warning msg="{w}"', file=sys.stderr)


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


def confirm(message: str) -> bool:
    """docker's prompt.Confirm: `y` or `Y` answers yes."""
    sys.stdout.write(f"{message} [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    return answer in ("y", "Y")


def root_key_id(repo: Repository) -> str:
    """The root key to initialise a repository with: the first stored (docker
    shares one root key between repositories), else a new one."""
    from ...distribution.trust.keys import PrivateKey

    ids = repo.keys.ids_for_role("root")
    return ids[0] if ids else repo.keys.add(PrivateKey.generate(), "root")


def add_staged_signer(repo: Repository, role: str, keys: list[Any]) -> None:
    from ...distribution.trust.errors import TrustError

    if role.count("/") < 1 or not role.removeprefix("targets/"):
        raise TrustError(f"tuf: invalid role {role}. invalid delegation role name")
    repo.add_delegation(role, keys, [""])
    repo.add_delegation(RELEASES, keys, [""])


def go_os_error(op: str, path: str, e: OSError) -> str:
    msg = {2: "no such file or directory", 13: "permission denied"}.get(e.errno or 0,
                                                                         e.strerror or str(e))
    return f"{op} {path}: {msg}"
