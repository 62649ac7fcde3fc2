"""`dockyard trust` side by side with docker 28's `docker trust`: a notary-server
(in-memory storage, its own signing service for snapshots and timestamps, TLS
from a trustme CA) and Debian's docker-registry, both on 127.0.0.1; images are
pushed through Dockyard's daemon.

Each CLI has its own config dir (keys, trusted roots) and works on a twin
repository (`test/d-NAME` for docker, `test/y-NAME` for ours): the same steps
must print the same, once repository names and key IDs are normalised. Then
each CLI reads what the other signed, and uses keys the other made (a shared
config dir: the files are where docker keeps them, in its formats)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import DOCKER_CLI


def _docker28() -> str | None:
    for cli in (DOCKER_CLI, "/usr/local/bin/docker", shutil.which("docker")):
        if not cli or not os.path.exists(cli):
            continue
        r = subprocess.run([cli, "--version"], capture_output=True, text=True)
        m = re.search(r"version (\d+)\.", r.stdout)
        if m and int(m.group(1)) >= 28:
            return cli
    return None


DOCKER = _docker28()
NOTARY_SERVER = shutil.which("notary-server")
NOTARY = shutil.which("notary")  # notary's own client, from the same package
pytestmark = [
    pytest.mark.docker_cli,
    pytest.mark.skipif(DOCKER is None, reason="docker CLI 28 is not installed"),
    pytest.mark.skipif(NOTARY_SERVER is None, reason="notary-server is not installed (apt notary)"),
]
ROOT_PASS, REPO_PASS = "root-passphrase", "repo-passphrase"


# --- the notary server ------------------------------------------------------------------


@dataclass
class Notary:
    url: str
    host: str
    ca_pem: Path
    proc: subprocess.Popen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_notary(base: Path, auth: dict | None = None) -> Notary:
    """notary-server on 127.0.0.1 with TLS from a new CA; `auth`: its config's
    "auth" section (token auth against a TokenServer)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    cert.private_key_pem.write_to_path(str(base / "server.key"))
    (base / "server.crt").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    ctx = ssl.create_default_context(cafile=str(base / "ca.pem"))
    for _ in range(5):  # a port picked now may be taken before the server binds it
        host = f"127.0.0.1:{_free_port()}"
        config = {"server": {"http_addr": host, "tls_key_file": str(base / "server.key"),
                             "tls_cert_file": str(base / "server.crt")},
                  "trust_service": {"type": "local"}, "storage": {"backend": "memory"},
                  "logging": {"level": "info"}}
        if auth:
            config["auth"] = auth
        (base / "config.json").write_text(json.dumps(config))
        with open(base / "notary.log", "ab") as log:
            proc = subprocess.Popen([NOTARY_SERVER, "-config", str(base / "config.json")],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"https://{host}/v2/", context=ctx, timeout=2):
                    return Notary(f"https://{host}", host, base / "ca.pem", proc)
            except urllib.error.HTTPError as e:  # 401 behind token auth: up all the same
                e.close()
                return Notary(f"https://{host}", host, base / "ca.pem", proc)
            except OSError:
                time.sleep(0.05)
        _stop(proc)
    raise RuntimeError("notary-server did not start:\n" + (base / "notary.log").read_text()[-2000:])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def notary(tmp_path_factory) -> Iterator[Notary]:
    n = _start_notary(tmp_path_factory.mktemp("notary"))
    try:
        yield n
    finally:
        _stop(n.proc)


# --- the two CLIs -----------------------------------------------------------------------


@dataclass
class World:
    notary: Notary
    registry: str  # host:port
    image: str  # busybox in the registry and in Dockyard's daemon
    digest: str  # its manifest's, which both CLIs sign
    daemon: object


@pytest.fixture(scope="module")
def world(notary, registry, busybox_image, daemon) -> World:
    daemon.cli("pull", "-q", busybox_image.ref)
    return World(notary, registry.host, busybox_image.ref,
                 busybox_image.manifest_digest.removeprefix("sha256:"), daemon)


class Side:
    """One CLI with its config dir; `prefix` names its twin repositories."""

    passphrases = True  # in the environment; False: answered on stdin
    server = ""  # another DOCKER_CONTENT_TRUST_SERVER than the notary's

    def __init__(self, kind: str, world: World, config: Path, user: str = "alice") -> None:
        self.kind, self.world, self.config = kind, world, config
        self.prefix = "d" if kind == "docker" else "y"
        self.trust_ca(world.notary)
        cfg = config / "config.json"
        if user and not cfg.exists():
            auth = base64.b64encode(f"{user}:secret".encode()).decode()
            cfg.write_text(json.dumps({"auths": {world.registry: {"auth": auth}}}))

    def trust_ca(self, notary: Notary) -> None:
        """docker's `<config>/tls/<host:port>/ca.crt` for this notary server."""
        tls = self.config / "tls" / notary.host
        tls.mkdir(parents=True, exist_ok=True)
        shutil.copy(notary.ca_pem, tls / "ca.crt")

    def repo(self, name: str) -> str:
        return f"{self.world.registry}/test/{self.prefix}-{name}"

    def command(self) -> list[str]:
        return [DOCKER] if self.kind == "docker" else [sys.executable, "-m", "dockyard"]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(DOCKER_HOST=self.world.daemon.host, DOCKYARD_HOST=self.world.daemon.host,
                   DOCKYARD_NO_AUTOSTART="1", DOCKER_CONTENT_TRUST_SERVER=self.world.notary.url,
                   DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE=ROOT_PASS,
                   DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE=REPO_PASS,
                   DOCKER_CONFIG=str(self.config), DOCKYARD_CONFIG=str(self.config))
        env.pop("DOCKER_CONTENT_TRUST", None)
        if self.server:
            env["DOCKER_CONTENT_TRUST_SERVER"] = self.server
        if not self.passphrases:
            del env["DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE"]
            del env["DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"]
        return env

    def run(self, *args: str, input: bytes | None = None, cwd: Path | None = None
            ) -> subprocess.CompletedProcess:
        return subprocess.run([*self.command(), *args], env=self.env(), input=input, capture_output=True,
                              timeout=60, cwd=cwd)

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        r = self.run(*args, **kw)
        assert r.returncode == 0, (self.kind, args, r.stdout.decode(), r.stderr.decode())
        return r

    def tag(self, name: str, tag: str) -> str:
        ref = f"{self.repo(name)}:{tag}"
        self.world.daemon.cli("tag", self.world.image, ref)
        return ref


def sides(world: World, tmp_path: Path, user: str = "alice") -> tuple[Side, Side]:
    return (Side("docker", world, tmp_path / "docker-config", user),
            Side("dockyard", world, tmp_path / "dockyard-config", user))


def normal(side: Side, r: subprocess.CompletedProcess, paths: dict[str, str] | None = None
           ) -> tuple[int, str, str]:
    """(returncode, stdout, stderr) with the twin repository names made one, key
    IDs (64, 12 and 7 hex digits) replaced, paths named, log times dropped."""
    out = []
    for text in (r.stdout.decode(), r.stderr.decode()):
        text = text.replace(f"/test/{side.prefix}-", "/test/x-")
        text = text.replace(side.world.digest, "<image-digest>")
        text = re.sub(r'time="[^"]*"', 'time="<time>"', text)
        text = re.sub(r"(^|[\s'])dockyard\b", r"\1docker", text)  # the program's name
        for p, name in (paths or {}).items():
            text = text.replace(p, name)
        text = re.sub(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", "<key-id>", text)
        text = re.sub(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])", "<key-id12>", text)
        text = re.sub(r"with ID [0-9a-f]{7}:", "with ID <key-id7>:", text)
        out.append(text)
    return r.returncode, out[0], out[1]


def run_both(*runs: tuple[Side, list[str]], input: bytes | None = None
             ) -> list[subprocess.CompletedProcess]:
    """Each side's command, at the same time (they touch different repositories)."""
    procs = []
    for side, args in runs:
        procs.append((subprocess.Popen([*side.command(), *args], env=side.env(), stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE), args))
    out = []
    for p, args in procs:
        try:
            stdout, stderr = p.communicate(input or b"", timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out.append(subprocess.CompletedProcess(args, p.returncode, stdout, stderr))
    return out


def same(docker: Side, ours: Side, *args: str, input: bytes | None = None
         ) -> tuple[int, str, str]:
    """Run `args` (with `{repo:NAME}` naming each side's twin) on both; equal results."""
    def expand(side: Side) -> list[str]:
        return [re.sub(r"\{repo:([\w-]+)\}", lambda m: side.repo(m.group(1)), a) for a in args]

    rd, ry = run_both((docker, expand(docker)), (ours, expand(ours)), input=input)
    nd, ny = normal(docker, rd), normal(ours, ry)
    assert ny == nd, f"{args}:\ndocker: {nd}\nours:   {ny}"
    return nd


# --- tests --------------------------------------------------------------------------------


def test_inspect_a_repository_docker_signed(world, tmp_path):
    docker, _ = sides(world, tmp_path / "signer")
    for tag in ("v1", "v10", "v2"):
        docker.tag("insp", tag)
        docker.ok("trust", "sign", f"{docker.repo('insp')}:{tag}")
    # fresh config dirs: the first look trusts the root on first use
    reader_d = Side("docker", world, tmp_path / "rd", user="")
    reader_y = Side("dockyard", world, tmp_path / "ry", user="")
    repo = docker.repo("insp")
    missing = f"{world.registry}/test/no-such-repo"
    for args in (["inspect", f"{repo}:v1", repo, missing, f"{repo}:nope"],
                 ["inspect", "--pretty", repo, f"{repo}:x"], ["inspect", "--pretty", missing]):
        rd, ry = run_both((reader_d, ["trust", *args]), (reader_y, ["trust", *args]))
        assert (ry.returncode, ry.stdout, ry.stderr) == (rd.returncode, rd.stdout, rd.stderr), args
    # with the server gone, what was cached stands in, with notary's warnings
    reader_d.server = reader_y.server = f"https://127.0.0.1:{_free_port()}"
    rd, ry = run_both(*((s, ["trust", "inspect", "--pretty", repo, missing])
                        for s in (reader_d, reader_y)))
    assert normal(reader_d, ry) == normal(reader_d, rd)  # (times aside)
    assert b"using cached timestamp" in ry.stderr
    reader_y.server = ""
    shown = json.loads(reader_y.run("trust", "inspect", repo).stdout)[0]
    assert [t["SignedTag"] for t in shown["SignedTags"]] == ["v1", "v2", "v10"]
    assert shown["Signers"][0]["Name"] == "alice"
    # the metadata is cached where docker caches it
    meta = tmp_path / "ry" / "trust" / "tuf" / repo / "metadata"
    assert {p.relative_to(meta).as_posix() for p in meta.rglob("*.json")} == {
        "root.json", "timestamp.json", "snapshot.json", "targets.json",
        "targets/releases.json", "targets/alice.json"}


def test_key_generate_and_load(world, tmp_path):
    docker, ours = sides(world, tmp_path)
    dirs = {s.kind: tmp_path / f"keys-{s.kind}" for s in (docker, ours)}
    for d in dirs.values():
        d.mkdir()

    def both(*args: str, input: bytes | None = None) -> tuple[int, str, str]:
        rd, ry = run_both(*((s, [a.replace("<dir>", str(dirs[s.kind])) for a in args])
                            for s in (docker, ours)), input=input)
        nd = normal(docker, rd, {str(dirs["docker"]): "<dir>"})
        ny = normal(ours, ry, {str(dirs["dockyard"]): "<dir>"})
        assert ny == nd, f"{args}:\ndocker: {nd}\nours:   {ny}"
        return nd

    assert both("trust", "key", "generate", "bob", "--dir", "<dir>")[0] == 0
    assert both("trust", "key", "generate", "bob", "--dir", "<dir>")[0] == 1  # exists
    both("trust", "key", "generate", "Bob", "--dir", "<dir>/nope")
    both("trust", "key", "generate")  # docker's argument count messages
    both("trust", "signer", "add", "x")
    # no passphrases in the environment: notary's prompts, answered on stdin
    docker.passphrases = ours.passphrases = False
    assert both("trust", "key", "generate", "asked", "--dir", "<dir>",
                input=b"passphrase1\npassphrase1\n")[0] == 0
    both("trust", "key", "generate", "short", "--dir", "<dir>", input=b"short\nlonger-one\n")
    docker.passphrases = ours.passphrases = True
    for side in (docker, ours):
        for p in (side.config / "trust" / "private").iterdir():
            if "role: asked" in p.read_text():
                p.unlink()
    # the same files: the public key beside, the private key stored under its ID
    for side in (docker, ours):
        pub = dirs[side.kind] / "bob.pub"
        assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----\nrole: bob\n\n")
        assert pub.stat().st_mode & 0o777 == 0o600
        [key] = (side.config / "trust" / "private").iterdir()
        head = key.read_text().splitlines()[:3]
        assert head == ["-----BEGIN ENCRYPTED PRIVATE KEY-----", "role: bob", ""], head

    # load one EC key, as SEC1, PKCS #8, and encrypted PKCS #8, into both stores
    sec1, pk8, enc = tmp_path / "ec.pem", tmp_path / "ec8.pem", tmp_path / "enc.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                    "-out", str(sec1)], check=True)
    subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(sec1), "-out",
                    str(pk8)], check=True)
    subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1",
                    "-in", str(sec1), "-out", str(enc), "-passout", f"pass:{REPO_PASS}"],
                   check=True)
    for p in (sec1, pk8, enc):
        p.chmod(0o600)
    assert both("trust", "key", "load", str(sec1))[0] == 0
    assert both("trust", "key", "load", "--name", "carol", str(pk8))[0] == 0
    assert both("trust", "key", "load", "--name", "dave", str(enc))[0] == 0  # stores nothing
    both("trust", "key", "load", "<dir>/bob.pub")
    pk8.chmod(0o644)
    both("trust", "key", "load", "--name", "Dave", str(pk8))
    both("trust", "key", "load", str(pk8))
    stored = {s.kind: {p.name: re.search(r"role: (\S+)", p.read_text()).group(1)
                       for p in (s.config / "trust" / "private").iterdir()} for s in (docker, ours)}
    [ec_id] = set(stored["docker"]) & set(stored["dockyard"])
    assert stored["docker"][ec_id] == stored["dockyard"][ec_id] == "carol"
    assert sorted(stored["docker"].values()) == sorted(stored["dockyard"].values())

    # ours opens docker's key files (docker opening ours: test_keys_interoperate)
    from dockyard.distribution.trust.keys import KeyStore

    store = KeyStore(docker.config / "trust", lambda *_: (REPO_PASS, False))
    assert sorted(k.id + ".key" for k in store.list()) == sorted(stored["docker"])
    assert all(store.get(k.id).id == k.id for k in store.list())


def test_sign(world, tmp_path):
    docker, ours = sides(world, tmp_path)
    for side in (docker, ours):
        side.tag("sign", "v1")
    # a new repository: root and repository keys, signer alice, push, sign
    same(docker, ours, "trust", "sign", "{repo:sign}:v1")
    # an existing signed target: signed again from the trust data alone
    same(docker, ours, "trust", "sign", "{repo:sign}:v1")
    # --local pushes and signs again
    same(docker, ours, "trust", "sign", "--local", "{repo:sign}:v1")
    same(docker, ours, "trust", "sign", "{repo:sign}")
    same(docker, ours, "trust", "sign", "{repo:nothere}:v1")  # no such local image
    # the same files and modes on disk: keys for root (shared by repositories),
    # repository and signer; the metadata each repository's cache holds
    def layout(side: Side) -> list[tuple[str, str]]:
        top = side.config / "trust"
        return sorted((oct(p.stat().st_mode & 0o777), re.sub(
            r"[0-9a-f]{64}", "<id>", p.relative_to(top).as_posix().replace(
                f"/test/{side.prefix}-", "/test/x-"))) for p in [top, *top.rglob("*")])

    assert layout(ours) == layout(docker)
    for side in (docker, ours):
        roles = sorted(re.search(r"role: (\S+)", p.read_text()).group(1)
                       for p in (side.config / "trust" / "private").iterdir())
        assert roles == ["alice", "root", "targets"], (side.kind, roles)
    # each CLI reads what the other signed as the signer does
    same(docker, ours, "trust", "inspect", "--pretty", "{repo:sign}")
    for reader, signer in ((docker, ours), (ours, docker)):
        fresh = Side(reader.kind, world, tmp_path / f"fresh-{reader.kind}", user="")
        mine = signer.run("trust", "inspect", signer.repo("sign"))
        theirs = fresh.run("trust", "inspect", signer.repo("sign"))
        assert (theirs.returncode, theirs.stdout, theirs.stderr) == \
            (mine.returncode, mine.stdout, mine.stderr)
    # the cached root pins trust: once it no longer verifies, nothing does
    for side in (docker, ours):
        cached = side.config / "trust" / "tuf" / side.repo("sign") / "metadata" / "root.json"
        cached.write_text(cached.read_text().replace('"version":1', '"version":7'))
    same(docker, ours, "trust", "inspect", "{repo:sign}")
    same(docker, ours, "trust", "sign", "{repo:sign}:v1")


def test_sign_without_a_username(world, tmp_path):
    """docker makes an anonymous signer `targets`, which notary refuses."""
    docker, ours = sides(world, tmp_path, user="")
    for side in (docker, ours):
        side.tag("anon", "v1")
    same(docker, ours, "trust", "sign", "{repo:anon}:v1")


def test_signers(world, tmp_path):
    docker, ours = sides(world, tmp_path)
    keys = {s.kind: tmp_path / f"keys-{s.kind}" for s in (docker, ours)}
    for side in (docker, ours):
        keys[side.kind].mkdir()
        side.ok("trust", "key", "generate", "carol", "--dir", str(keys[side.kind]))
        side.tag("signers", "v1")

    def each(*args: str, input: bytes | None = None, key: bool = False) -> tuple[int, str, str]:
        runs = []
        for side in (docker, ours):
            full = [a.replace("{repo}", side.repo("signers")) for a in args]
            if key:
                full[3:3] = ["--key", str(keys[side.kind] / "carol.pub")]
            runs.append((side, full))
        results = [normal(side, r, {str(keys[side.kind]): "<dir>"})
                   for (side, _), r in zip(runs, run_both(*runs, input=input))]
        assert results[1] == results[0], f"{args}:\ndocker: {results[0]}\nours:   {results[1]}"
        return results[0]

    # a new repository is initialised first
    assert each("trust", "signer", "add", "carol", "{repo}", key=True)[0] == 0
    each("trust", "signer", "add", "Carol", "{repo}", key=True)
    each("trust", "signer", "add", "dave", "{repo}")
    # carol holds the key: signing goes into targets/carol and targets/releases
    assert each("trust", "sign", "{repo}:v1")[0] == 0
    each("trust", "signer", "remove", "nobody", "{repo}")
    # docker 28 removes a signer only after a confirmed prompt for the last one
    each("trust", "signer", "remove", "-f", "carol", "{repo}")
    assert each("trust", "signer", "remove", "carol", "{repo}", input=b"y\n")[0] == 0
    # releases now has no key its signature verifies with: notary warns on each
    # update, the role is left out, and (both fail alike) it can't be re-signed
    each("trust", "inspect", "--pretty", "{repo}")
    each("trust", "signer", "add", "dave", "{repo}", key=True)
    each("trust", "sign", "{repo}:v1")
    each("trust", "signer", "remove", "dave", "{repo}")


def test_keys_interoperate(world, tmp_path):
    """One config dir for both CLIs: each signs with a key the other generated,
    in a repository the other initialised, and each reads the result alike."""
    docker = Side("docker", world, tmp_path / "shared")
    ours = Side("dockyard", world, tmp_path / "shared")
    keydir = tmp_path / "pub"
    keydir.mkdir()
    repo = docker.repo("shared")
    docker.tag("shared", "v1")
    docker.tag("shared", "v2")
    docker.ok("trust", "key", "generate", "dave", "--dir", str(keydir))
    ours.ok("trust", "key", "generate", "erin", "--dir", str(keydir))
    ours.ok("trust", "signer", "add", "--key", str(keydir / "dave.pub"), "dave", repo)
    docker.ok("trust", "signer", "add", "--key", str(keydir / "erin.pub"), "erin", repo)
    ours.ok("trust", "sign", f"{repo}:v1")  # signs as dave and erin: keys made by both
    docker.ok("trust", "sign", f"{repo}:v2")
    rd, ry = (s.run("trust", "inspect", repo) for s in (docker, ours))
    assert (ry.returncode, ry.stdout, ry.stderr) == (rd.returncode, rd.stdout, rd.stderr)
    signed = {t["SignedTag"]: sorted(t["Signers"]) for t in json.loads(ry.stdout)[0]["SignedTags"]}
    assert signed == {"v1": ["dave", "erin"], "v2": ["dave", "erin"]}


def test_revoke(world, tmp_path):
    docker, ours = sides(world, tmp_path)
    for tag in ("v1", "v2"):
        for side in (docker, ours):
            side.tag("rev", tag)
        assert all(r.returncode == 0 for r in run_both(
            *((s, ["trust", "sign", f"{s.repo('rev')}:{tag}"]) for s in (docker, ours))))
    same(docker, ours, "trust", "revoke", "{repo:rev}:v1")
    same(docker, ours, "trust", "revoke", "{repo:rev}:v1")  # no longer signed
    same(docker, ours, "trust", "revoke", "{repo:rev}", input=b"n\n")
    same(docker, ours, "trust", "revoke", "-y", "{repo:rev}")
    same(docker, ours, "trust", "revoke", "-y", "{repo:rev}")  # nothing left


def test_a_repository_notary_made(world, tmp_path):
    """notary's own CLI initialises a repository keeping the snapshot key: ours
    adds a signer (signing the snapshot itself) and reads it as docker does."""
    ours = Side("dockyard", world, tmp_path / "config")
    gun = ours.repo("notary")
    target = tmp_path / "payload"
    target.write_bytes(b"payload\n")
    env = dict(os.environ, NOTARY_ROOT_PASSPHRASE=ROOT_PASS, NOTARY_TARGETS_PASSPHRASE=REPO_PASS,
               NOTARY_SNAPSHOT_PASSPHRASE=REPO_PASS)
    notary = [NOTARY or "notary", "-s", world.notary.url, "-d",
              str(ours.config / "trust"), "--tlscacert", str(world.notary.ca_pem)]
    for args in (["init", gun, "-p"], ["add", gun, "v1", str(target), "-p"]):
        subprocess.run([*notary, *args], env=env, check=True, capture_output=True, timeout=60)
    ours.ok("trust", "key", "generate", "bob", "--dir", str(tmp_path))
    ours.ok("trust", "signer", "add", "--key", str(tmp_path / "bob.pub"), "bob", gun)
    reader = Side("docker", world, tmp_path / "reader", user="")
    rd, ry = reader.run("trust", "inspect", gun), ours.run("trust", "inspect", gun)
    assert (ry.returncode, ry.stdout, ry.stderr) == (rd.returncode, rd.stdout, rd.stderr)
    info = json.loads(ry.stdout)[0]
    assert info["SignedTags"][0]["Signers"] == ["Repo Admin"]
    assert [s["Name"] for s in info["Signers"]] == ["bob"]
    r = subprocess.run([*notary, "delegation", "list", gun], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "targets/bob" in r.stdout, r.stderr


def test_token_auth(world, tmp_path):
    """A notary server behind docker's token auth: both CLIs ask the token server
    for the same scopes with the registry's credentials, or none."""
    from registries import ISSUER, SERVICE, TokenServer

    tokens = TokenServer(tmp_path, {"alice": "secret"}).start()
    try:
        server = _start_notary(tmp_path, auth={"type": "token", "options": {
            "realm": tokens.realm, "service": SERVICE, "issuer": ISSUER,
            "rootcertbundle": str(tokens.cert_pem)}})
        try:
            docker, ours = sides(world, tmp_path)
            anon_d = Side("docker", world, tmp_path / "anon-d", user="")
            anon_y = Side("dockyard", world, tmp_path / "anon-y", user="")
            for side in (docker, ours, anon_d, anon_y):
                side.trust_ca(server)
                side.server = server.url
            for side in (docker, ours):
                side.tag("tok", "v1")
            same(docker, ours, "trust", "sign", "{repo:tok}:v1")
            same(docker, ours, "trust", "inspect", "--pretty", "{repo:tok}")
            asked = {}
            for side in (docker, ours):
                tokens.requests.clear()
                side.ok("trust", "inspect", side.repo("tok"))
                asked[side.kind] = [(r["user"], [s.replace(f"/test/{side.prefix}-", "/test/x-")
                                                 for s in r["scopes"]]) for r in tokens.requests]
            assert asked["dockyard"] == asked["docker"], asked
            assert asked["docker"] and asked["docker"][0][0] == "alice"
            rd, ry = anon_d.run("trust", "inspect", docker.repo("tok")), \
                anon_y.run("trust", "inspect", docker.repo("tok"))
            assert (ry.returncode, ry.stdout, ry.stderr) == (rd.returncode, rd.stdout, rd.stderr)
        finally:
            _stop(server.proc)
    finally:
        tokens.stop()
