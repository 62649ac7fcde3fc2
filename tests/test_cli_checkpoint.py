"""`checkpoint` (experimental in docker): Dockyard's daemon answers as a
dockerd without experimental features, and our CLI says what docker's does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

DOCKER28 = next((p for p in ("/usr/local/bin/docker", shutil.which("docker") or "")
                 if p and os.path.exists(p)), None)


@pytest.mark.parametrize("args", [["checkpoint", "ls", "c1"], ["checkpoint", "create", "c1", "cp"],
                                  ["checkpoint", "rm", "c1", "cp"]])
def test_checkpoint_commands(daemon, tmp_path, args):
    if DOCKER28 is None:
        pytest.skip("no docker CLI")
    env = dict(daemon.env(), DOCKER_CONFIG=str(tmp_path / "d"), DOCKYARD_CONFIG=str(tmp_path / "y"))
    d = subprocess.run([DOCKER28, *args], env=env, capture_output=True, text=True)
    y = subprocess.run([sys.executable, "-m", "dockyard", *args], env=env, capture_output=True,
                       text=True)
    assert (y.returncode, y.stdout, y.stderr) == \
        (d.returncode, d.stdout, d.stderr.replace("docker checkpoint", "dockyard checkpoint"))
    assert d.returncode == 1 and "experimental features enabled" in d.stderr


def test_checkpoint_endpoints_answer_501(daemon):
    c = daemon.client()
    for method, path in (("GET", "/containers/x/checkpoints"),
                         ("POST", "/containers/x/checkpoints"),
                         ("DELETE", "/containers/x/checkpoints/cp")):
        r = c.request(method, path, check=False)
        assert (r.status, r.json()["message"]) == (
            501, "This experimental feature is disabled by default. Start the Docker daemon in "
                 "experimental mode in order to enable it.")
        r.close()
