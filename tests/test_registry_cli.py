"""pull, push, login, logout and search through the daemon: with the real
docker CLI and SDK (X-Registry-Auth from their own config), and with
Dockyard's CLI (credentials in ~/.dockyard/config.json)."""

from __future__ import annotations

import json

import pytest
from conftest import tmux_screen
from registries import busybox_layer, push_image


@pytest.fixture
def dy_config(tmp_path, monkeypatch):
    """Dockyard's CLI keeps its credentials here for the test."""
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "dyconf"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockerconf"))
    return tmp_path / "dyconf" / "config.json"


def test_docker_cli_push_pull(daemon, registry, busybox_tar):
    name = f"{registry.host}/cli/busybox:v1"
    daemon.docker("import", str(busybox_tar), name)
    out = daemon.docker("push", name).stdout.decode()
    assert f"The push refers to repository [{registry.host}/cli/busybox]" in out
    assert ": Pushed" in out and "v1: digest: sha256:" in out
    image_id = daemon.docker("images", "-q", "--no-trunc", name).stdout.decode().strip()
    daemon.docker("rmi", name)
    out = daemon.docker("pull", name).stdout.decode()
    assert "v1: Pulling from cli/busybox" in out and ": Pull complete" in out
    assert f"Status: Downloaded newer image for {name}" in out
    assert daemon.docker("images", "-q", "--no-trunc", name).stdout.decode().strip() == image_id
    # It runs.
    r = daemon.docker("run", "--rm", name, "echo", "pulled")
    assert r.stdout == b"pulled\n"
    bad = daemon.docker("pull", f"{registry.host}/cli/busybox:nope", check=False)
    assert bad.returncode == 1
    assert b"manifest unknown" in bad.stderr
    miss = daemon.docker("push", f"{registry.host}/cli/none:v1", check=False)
    assert miss.returncode == 1
    assert b"An image does not exist locally with the tag" in miss.stderr
    daemon.docker("rmi", name)


def test_docker_cli_login_sends_credentials(daemon, registry_factory, dy_config):
    reg = registry_factory(auth="htpasswd", users={"alice": "secret"})
    image = push_image(reg, "team/app", "v1", [busybox_layer()])
    denied = daemon.docker("pull", image.ref, check=False)
    assert denied.returncode == 1
    bad = daemon.docker("login", "-u", "alice", "--password-stdin", reg.host, input=b"wrong\n",
                        check=False)
    assert bad.returncode == 1 and b"401" in bad.stderr
    ok = daemon.docker("login", "-u", "alice", "--password-stdin", reg.host, input=b"secret\n")
    assert b"Login Succeeded" in ok.stdout
    # The docker CLI keeps the credentials and sends them in X-Registry-Auth.
    out = daemon.docker("pull", image.ref).stdout.decode()
    assert "Pull complete" in out
    daemon.docker("tag", image.ref, f"{reg.host}/team/copy:v2")
    out = daemon.docker("push", f"{reg.host}/team/copy:v2").stdout.decode()
    assert "Mounted from team/app" in out
    daemon.docker("logout", reg.host)
    daemon.docker("rmi", image.ref, f"{reg.host}/team/copy:v2")


def test_dockyard_cli(daemon, registry, registry_factory, busybox_tar, dy_config):
    name = f"{registry.host}/dy/busybox"
    daemon.cli("import", str(busybox_tar), f"{name}:v1")
    out = daemon.cli("push", f"{name}:v1").stdout.decode()
    assert ": Pushed" in out or ": Mounted from cli/busybox" in out  # the daemon may know it
    assert daemon.cli("push", "-q", f"{name}:v1").stdout.decode() == f"{name}:v1\n"
    daemon.cli("rmi", f"{name}:v1")
    assert daemon.cli("pull", "-q", f"{name}:v1").stdout.decode() == f"{name}:v1\n"
    r = daemon.cli("pull", name, check=False)  # no :latest in that repository
    assert r.stdout.decode().startswith("Using default tag: latest\n")
    assert r.returncode == 1 and b"manifest unknown" in r.stderr
    # search: the registry's catalog, filtered by the term
    found = daemon.cli("search", "--format", "{{.Name}}", f"{registry.host}/dy/").stdout
    assert f"{name}\n".encode() in found
    table = daemon.cli("search", f"{registry.host}/busybox").stdout.decode().splitlines()
    assert table[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    r = daemon.cli("search", "--limit", "0", f"{registry.host}/x", check=False)
    assert r.returncode == 1 and b"limit 0 is outside the range of [1, 100]" in r.stderr

    # login / logout with a Basic-auth registry
    reg = registry_factory(auth="htpasswd", users={"alice": "secret"})
    image = push_image(reg, "team/app", "v1", [busybox_layer()])
    r = daemon.cli("login", "-u", "alice", "--password-stdin", reg.host, input=b"nope\n",
                   check=False)
    assert r.returncode == 1 and b"Error response from daemon" in r.stderr
    assert not dy_config.exists()
    r = daemon.cli("login", "-u", "alice", "--password-stdin", reg.host, input=b"secret\n")
    assert r.stdout == b"Login Succeeded\n"
    saved = json.loads(dy_config.read_text())
    assert saved["auths"][reg.host]["auth"] == "YWxpY2U6c2VjcmV0"
    assert oct(dy_config.stat().st_mode & 0o777) == "0o600"
    assert daemon.cli("pull", "-q", image.ref).stdout.decode() == f"{image.ref}\n"
    assert daemon.cli("logout", reg.host).stdout.decode() == \
        f"Removing login credentials for {reg.host}\n"
    assert daemon.cli("logout", reg.host).stdout.decode() == f"Not logged in to {reg.host}\n"
    daemon.cli("rmi", image.ref, f"{name}:v1")


def test_docker_sdk_pull_push(daemon, registry, busybox_image):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    try:
        img = client.images.pull(f"{registry.host}/test/busybox", tag="latest")
        assert img.id == busybox_image.image_id
        img.tag(f"{registry.host}/sdk/busybox", "s1")
        lines = list(client.images.push(f"{registry.host}/sdk/busybox", tag="s1", stream=True,
                                        decode=True))
        assert any(m.get("aux", {}).get("Tag") == "s1" for m in lines)
        client.images.remove(f"{registry.host}/sdk/busybox:s1")
        client.images.remove(f"{registry.host}/test/busybox:latest")
    finally:
        client.close()


def test_ctrl_c_keeps_finished_layers(daemon, bad_registry):
    """Ctrl-C of `dockyard pull`: the daemon stops the pull when it notices the
    client is gone, keeps the layers that completed, and the next pull reuses them."""
    import signal
    import subprocess
    import sys
    import time

    from registries import files_layer

    import uuid

    # Layers of their own: one another test pulled already would not be
    # fetched (nor stall) here.
    token = uuid.uuid4().hex
    layers = [files_layer({"x": token}), files_layer({"a": token}), files_layer({"b": token})]
    # The stall must outlast the client's exit, however loaded the machine.
    stall = 6
    image = bad_registry.serve("t/ctrlc", "v1", layers, fault="slow", fault_layer=2, stall=stall)
    try:
        # SIGINT as a terminal has it: a suite run in the background (as a
        # shell's `&` does it) would hand the client SIGINT ignored.
        p = subprocess.Popen([sys.executable, "-m", "dockyard", "pull", image.ref],
                             env=daemon.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 30
        while bad_registry.blob_gets(image.layers[2].digest) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stalled = time.monotonic()
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        p.wait(10)
        assert time.monotonic() - stalled < stall, "the client outlived the stall"
        # the stall ends, the daemon's next progress write fails
        time.sleep(max(0.0, stalled + stall + 1 - time.monotonic()))
        bad_registry.faults.clear()
        out = daemon.cli("pull", image.ref).stdout.decode()
        for layer in image.layers[:2]:
            assert f"{layer.digest[7:19]}: Already exists" in out
        assert bad_registry.blob_gets(image.layers[0].digest) == 1
    finally:
        daemon.cli("rmi", "-f", image.ref, check=False)


def test_pull_on_a_terminal_looks_like_docker(daemon, registry):
    """On a terminal, `dockyard pull` leaves the screen the docker CLI leaves:
    the tag line, a line per layer, then Digest and Status below them."""
    import shutil

    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    from registries import files_layer

    image = push_image(registry, "tty/app", "v1",
                       [busybox_layer(), files_layer({"a": "1" * 5000}),
                        files_layer({"b": "2" * 70000})])
    env = {"DOCKER_HOST": daemon.host, "DOCKYARD_HOST": daemon.host,
           "DOCKYARD_NO_AUTOSTART": "1", "DOCKER_CONFIG": str(daemon.base / "docker-config")}
    from conftest import DOCKER_CLI
    import sys

    screens = []
    for cmd in ([DOCKER_CLI, "pull", image.ref], [sys.executable, "-m", "dockyard", "pull", image.ref]):
        screens.append(tmux_screen(cmd, env, "END-OF-PULL"))
        daemon.docker("rmi", image.ref)
    docker_screen, ours = screens
    assert ours == docker_screen
    assert ours[0] == "v1: Pulling from tty/app"
    assert [ln.split(": ", 1)[1] for ln in ours[1:4]] == ["Pull complete"] * 3
    assert ours[4].startswith("Digest: sha256:") and ours[5].startswith("Status: Downloaded")
