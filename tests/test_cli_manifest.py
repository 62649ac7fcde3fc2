"""`dockyard manifest` side by side with docker 28's `docker manifest`, both
talking straight to Debian's docker-registry on loopback (plain HTTP), each
CLI with its own config dir: inspect of images and lists (Docker and OCI),
create/annotate/push/rm of local lists, the lists either CLI leaves for the
other, credentials from config.json, and the errors."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DOCKER_CLI
from registries import files_layer, push_image, start_registry

# The manifest commands left "experimental" after 20.10: compare with docker 28.
DOCKER28 = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else DOCKER_CLI
ROOT = Path(__file__).resolve().parent.parent
ZERO = "sha256:" + "0" * 64

pytestmark = pytest.mark.skipif(
    DOCKER28 is None or not subprocess.run([DOCKER28 or "false", "--version"],
                                           capture_output=True).stdout.startswith(
        b"Docker version 28."), reason="needs docker 28's CLI")


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    """A plain-HTTP registry with t/amd (amd64), t/arm (arm64/v8), t/idx (a
    Docker manifest list), t/oci (an OCI index) and t/noarch (no architecture)."""
    r = start_registry(tmp_path_factory.mktemp("mfreg"))
    try:
        r.images = {
            "amd": push_image(r, "t/amd", "v1", [files_layer({"amd": "1"})]),
            "arm": push_image(r, "t/arm", "v1", [files_layer({"arm": "1"})],
                              config={"architecture": "arm64", "os": "linux", "variant": "v8"}),
            "idx": push_image(r, "t/idx", "v1", [files_layer({"idx": "1"})], index=True),
            "oci": push_image(r, "t/oci", "v1", [files_layer({"oci": "1"})], media="oci",
                              index=True),
            "noarch": push_image(r, "t/noarch", "v1", [files_layer({"n": "1"})],
                                 config={"architecture": "", "os": "linux"}),
        }
        # Bytes Go escapes when it marshals, and leaves alone when it indents.
        oci = r.images["oci"]
        m = json.loads(oci.manifests[oci.platforms["linux/amd64"]][1])
        m["annotations"] = {"odd": "<a & b> caf\u00e9 \u2028 \\ \"q\""}
        raw = json.dumps(m, ensure_ascii=False, indent=2).encode() + b"\n"
        r.client().put_manifest("t/oci", "odd", m["mediaType"], raw)
        yield r
    finally:
        r.stop()


class Pair:
    """docker 28 and dockyard, each with its own config dir (or a shared one)."""

    def __init__(self, base: Path, pycache: Path, shared: bool = False) -> None:
        self.pycache = pycache
        self.docker_conf = base / "docker"
        self.dy_docker_conf = self.docker_conf if shared else base / "dy-docker"
        self.dy_conf = base / "dockyard"
        for d in (self.docker_conf, self.dy_docker_conf, self.dy_conf):
            d.mkdir(parents=True, exist_ok=True)

    def _env(self, ours: bool) -> dict[str, str]:
        if not ours:
            return {**os.environ, "DOCKER_CONFIG": str(self.docker_conf)}
        env = {**os.environ, "DOCKER_CONFIG": str(self.dy_docker_conf),
               "DOCKYARD_CONFIG": str(self.dy_conf), "DOCKYARD_NO_AUTOSTART": "1",
               "PYTHONPATH": str(ROOT / "python"), "PYTHONPYCACHEPREFIX": str(self.pycache)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # ~50 starts: compile the CLI once
        return env

    def _start(self, ours: bool, args: tuple[str, ...]) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "dockyard"] if ours else [DOCKER28]
        return subprocess.Popen([*cmd, "manifest", *args], env=self._env(ours),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    @staticmethod
    def _result(p: subprocess.Popen, ours: bool) -> tuple[int, str, str]:
        out, err = p.communicate(timeout=60)
        text = err.decode()
        if ours:  # usage messages name the program
            text = text.replace("dockyard manifest", "docker manifest").replace(
                "dockyard: ", "docker: ")
        return p.returncode, out.decode(), text

    def docker(self, *args: str) -> tuple[int, str, str]:
        return self._result(self._start(False, args), False)

    def dockyard(self, *args: str) -> tuple[int, str, str]:
        return self._result(self._start(True, args), True)

    def same(self, *args: str, rc: int | None = None, together: bool = True,
             ) -> tuple[int, str, str]:
        """Run both; assert the same exit code, stdout and stderr. Commands that
        change something run ours first (together=False), the rest at once."""
        if together:
            p_ours, p_theirs = self._start(True, args), self._start(False, args)
            ours, theirs = self._result(p_ours, True), self._result(p_theirs, False)
        else:
            ours = self.dockyard(*args)
            theirs = self.docker(*args)
        assert ours == theirs, args
        if rc is not None:
            assert ours[0] == rc, ours
        return ours

    def login(self, host: str, user: str, password: str) -> None:
        """Credentials in config.json, as `docker login` leaves them."""
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        cfg = json.dumps({"auths": {host: {"auth": auth}}})
        (self.docker_conf / "config.json").write_text(cfg)
        (self.dy_conf / "config.json").write_text(cfg)

    def stores(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        def read(conf: Path) -> dict[str, bytes]:
            root = conf / "manifests"
            return {str(p.relative_to(root)): p.read_bytes()
                    for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}
        return read(self.docker_conf), read(self.dy_docker_conf)


@pytest.fixture(scope="module")
def pycache(tmp_path_factory):
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def pair(tmp_path, pycache):
    return Pair(tmp_path, pycache)


def test_inspect_images_and_lists(reg, pair):
    h, imgs = reg.host, reg.images
    for flags in ((), ("-v",)):
        pair.same("inspect", "--insecure", *flags, f"{h}/t/oci:odd", rc=0)
    for name in ("amd", "idx", "oci"):
        for flags in ((), ("-v",)):
            rc, out, _ = pair.same("inspect", "--insecure", *flags, imgs[name].ref, rc=0)
            doc = json.loads(out)
            if name == "amd" and not flags:
                assert doc == json.loads(imgs["amd"].manifest)
            elif not flags:
                assert [m["digest"] for m in doc["manifests"]] == \
                    list(imgs[name].platforms.values())
    # by digest; a list entry by digest; tag and digest that disagree
    pair.same("inspect", "--insecure", imgs["idx"].digest_ref, rc=0)
    entry = imgs["oci"].platforms["linux/arm64/v8"]
    pair.same("inspect", "-v", "--insecure", f"{h}/t/oci@{entry}", rc=0)
    pair.same("inspect", "--insecure", f"{h}/t/amd:v1@{imgs['amd'].manifest_digest}", rc=0)
    pair.same("inspect", "--insecure", f"{h}/t/oci:v1@{entry}", rc=1)
    # nothing there: no such repository, or digest
    for ref in (f"{h}/nope/nope", f"{h}/t/amd@{ZERO}"):
        _, _, err = pair.same("inspect", "--insecure", ref, rc=1)
        assert err.startswith("no such manifest: ")
    # a plain-HTTP registry is not used without --insecure
    _, _, err = pair.same("inspect", imgs["amd"].ref, rc=1)
    assert err == f"no such manifest: {imgs['amd'].ref}\n"
    # nothing listening
    _, _, err = pair.same("inspect", "--insecure", "127.0.0.1:1/t/amd:v1", rc=1)
    assert "error pinging v2 registry" in err and "connection refused" in err


def test_create_annotate_push(reg, pair):
    h, imgs = reg.host, reg.images
    lst = f"{h}/t/list:v1"
    pair.same("create", lst, imgs["amd"].ref, imgs["arm"].ref, rc=1)  # not without --insecure
    rc, out, _ = pair.same("create", "--insecure", lst, imgs["amd"].ref, imgs["arm"].ref, rc=0)
    assert out == f"Created manifest list {lst}\n"
    ours, theirs = pair.stores()
    assert ours == theirs and len(ours) == 2  # the same files, byte for byte
    _, _, err = pair.same("create", "--insecure", lst, imgs["amd"].ref, rc=1)
    assert err == "refusing to amend an existing manifest list with no --amend flag\n"
    _, _, err = pair.same("create", "--insecure", "-a", lst, imgs["idx"].ref, rc=1)
    assert err == f"{imgs['idx'].ref} is a manifest list\n"

    pair.same("annotate", lst, imgs["arm"].ref, "--os-features", "f1,f2", "--os-version",
              "1.0", "--variant", "v9", rc=0)
    pair.same("annotate", lst, imgs["arm"].ref, "--os-features", "f2,f3", "--os-features",
              "f4", rc=0)
    _, _, err = pair.same("annotate", lst, imgs["arm"].ref, "--arch", "bogus", rc=1)
    assert err == "manifest entry for image has unsupported os/arch combination: /bogus\n"
    _, _, err = pair.same("annotate", lst, f"{h}/t/other:v1", "--arch", "arm", rc=1)
    assert err == f"manifest for image {h}/t/other:v1 does not exist in {lst}\n"
    assert pair.stores()[0] == pair.stores()[1]

    rc, out, _ = pair.same("inspect", lst, rc=0)
    arm = json.loads(out)["manifests"][1]["platform"]
    assert arm == {"architecture": "arm64", "os": "linux", "os.version": "1.0",
                   "os.features": ["f1", "f2", "f3", "f4"], "variant": "v9"}
    pair.same("inspect", "-v", lst, rc=0)
    pair.same("inspect", lst, imgs["arm"].ref, rc=0)
    _, _, err = pair.same("inspect", lst, f"{h}/t/other:v1", rc=1)
    assert err == f"No such manifest: {h}/t/other:v1\n"

    # Push: ours first, then docker's; both print the same digest for the list.
    rc, out, _ = pair.same("push", lst, rc=0, together=False)
    lines = out.splitlines()
    assert lines[:2] == [f"Pushed ref {h}/t/list@{imgs[n].manifest_digest} with digest: "
                         f"{imgs[n].manifest_digest}" for n in ("amd", "arm")]
    digest = lines[2]
    r = reg.client().get_manifest("t/list", "v1")
    assert r.headers["Docker-Content-Digest"] == digest
    rc, out, _ = pair.same("inspect", "-v", "--insecure", lst, rc=0)
    assert [m["Descriptor"]["platform"].get("variant") for m in json.loads(out)] == [None, "v9"]
    pair.same("push", "--insecure", "-p", lst, rc=0, together=False)
    assert pair.stores() == ({}, {})
    _, _, err = pair.same("push", lst, rc=1)
    assert err == f"No such manifest: {lst}\n"


def test_oci_list_same_repository(reg, pair):
    """Entries from the target repository itself: no mounts, an OCI index."""
    h, oci = reg.host, reg.images["oci"]
    lst = f"{h}/t/oci:again"
    refs = [f"{h}/t/oci@{d}" for d in oci.platforms.values()]
    pair.same("create", "--insecure", lst, *refs, rc=0)
    pair.same("annotate", lst, refs[1], "--os", "windows", "--arch", "amd64", rc=0)
    rc, out, _ = pair.same("push", "--insecure", lst, rc=0, together=False)
    assert out.startswith("sha256:") and len(out.splitlines()) == 1
    r = reg.client().get_manifest("t/oci", "again")
    assert r.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    assert r.headers["Docker-Content-Digest"] == out.strip()
    pair.same("rm", lst, rc=0)


def test_lists_shared_with_docker(reg, tmp_path, pycache):
    """One config dir: a list docker made is finished by dockyard, and back."""
    h, imgs = reg.host, reg.images
    pair = Pair(tmp_path, pycache, shared=True)
    a, b = f"{h}/t/shared:a", f"{h}/t/shared:b"
    assert pair.docker("create", "--insecure", a, imgs["amd"].ref, imgs["arm"].ref)[0] == 0
    assert pair.dockyard("annotate", a, imgs["amd"].ref, "--os-version", "7")[0] == 0
    entry = f"{h}/t/idx@{imgs['idx'].platforms['linux/amd64']}"
    assert pair.dockyard("create", "--insecure", "-a", a, entry)[0] == 0
    shown = pair.docker("inspect", a)
    assert shown == pair.dockyard("inspect", a) and shown[0] == 0
    rc, out, err = pair.dockyard("push", "--purge", a)
    assert rc == 0, err
    assert pair.stores() == ({}, {})
    assert pair.docker("inspect", a)[0] == 1  # gone from the local store, remote needs --insecure
    assert pair.docker("inspect", "--insecure", a)[1] == pair.dockyard("inspect", "--insecure",
                                                                       a)[1]
    assert pair.dockyard("create", "--insecure", b, imgs["arm"].ref)[0] == 0
    assert pair.docker("annotate", b, imgs["arm"].ref, "--variant", "v8.2")[0] == 0
    rc, out, err = pair.docker("push", "--purge", b)
    assert rc == 0, err
    assert json.loads(reg.client().get_manifest("t/shared", "b").body)["manifests"][0][
        "platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8.2"}


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_credentials(tmp_path, pycache, auth):
    """Basic auth, or tokens (anonymous pulls allowed): the credentials come
    from config.json; failures are worded as docker's."""
    reg = start_registry(tmp_path / "authreg", auth=auth, users={"alice": "secret"},
                         anonymous_pull=True)
    try:
        img = push_image(reg, "t/a", "v1", [files_layer({"a": "1"})])
        pair = Pair(tmp_path, pycache)
        lst = f"{reg.host}/t/l:v1"
        if auth == "htpasswd":
            _, _, err = pair.same("inspect", "--insecure", img.ref, rc=1)
            assert err == (f'Get "http://{reg.host}/v2/t/a/manifests/v1": '
                           "no basic auth credentials\n")
            pair.login(reg.host, "alice", "secret")
        pair.same("create", "--insecure", lst, img.ref, rc=0)
        pair.login(reg.host, "alice", "wrong")
        _, _, err = pair.same("inspect", "--insecure", img.ref, rc=1)
        if auth == "htpasswd":  # rejected credentials read as "not found"
            assert err == f"no such manifest: {img.ref}\n"
        else:  # the token server's answer
            assert err.startswith(f'Get "http://{reg.host}/v2/t/a/manifests/v1": unauthorized')
        _, _, err = pair.same("push", lst, rc=1)
        assert err.startswith("failed to mount blob t/a@sha256:")
        for conf in (pair.docker_conf, pair.dy_conf):
            (conf / "config.json").unlink()
        _, _, err = pair.same("push", lst, rc=1)  # anonymous: no push
        pair.login(reg.host, "alice", "secret")
        rc, out, _ = pair.same("push", "-p", lst, rc=0, together=False)
        assert reg.client(("alice", "secret")).get_manifest("t/l", "v1").headers[
            "Docker-Content-Digest"] == out.splitlines()[-1]
    finally:
        reg.stop()


def test_errors(reg, pair):
    h, imgs = reg.host, reg.images
    for args in (("create", "x"), ("inspect", "a", "b", "c"), ("annotate", "a")):
        pair.same(*args, rc=1)
    _, _, err = pair.same("inspect", "UPPER", rc=1)
    assert err == "invalid reference format: repository name (library/UPPER) must be lowercase\n"
    pair.same("create", "UP", "x", rc=1)
    pair.same("annotate", "up", "X", rc=1)
    # rm goes on after an error, and reports each
    pair.same("create", "--insecure", f"{h}/t/gone:v1", imgs["amd"].ref, rc=0)
    _, _, err = pair.same("rm", "nothere", f"{h}/t/gone:v1", "UP", rc=1)
    assert err.splitlines() == ["No such manifest: docker.io/library/nothere:latest",
                                "invalid reference format: repository name (library/UP) must "
                                "be lowercase"]
    assert pair.stores() == ({}, {})
    # entries that can't be pushed: no architecture; another registry (by name)
    pair.same("create", "--insecure", f"{h}/t/bad:v1", imgs["noarch"].ref, rc=0)
    _, _, err = pair.same("push", f"{h}/t/bad:v1", rc=1)
    assert err == (f"manifest {imgs['noarch'].ref} must have an OS and Architecture to be "
                   "pushed to a registry\n")
    port = h.split(":")[1]
    other = f"localhost:{port}/t/amd:v1"
    pair.same("create", "--insecure", f"{h}/t/bad2:v1", other, rc=0)
    _, _, err = pair.same("push", f"{h}/t/bad2:v1", rc=1)
    assert err == ("cannot use source images from a different registry than the target image: "
                   f"localhost:{port} != {h}\n")
    _, _, err = pair.same("inspect", f"{h}/t/bad2:v1", rc=1)
    assert err.startswith("failed to assemble ManifestDescriptor: cannot use source images")
    pair.same("rm", f"{h}/t/bad:v1", f"{h}/t/bad2:v1", rc=0)
