"""The swarm-mode endpoints answer as a dockerd 20.10 that is in no swarm
(statuses and messages asked of one): docker-py's cleanup walks them."""

from __future__ import annotations

import json

import pytest

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
               'join" to connect this node to swarm and try again.')


def _call(daemon, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    r = daemon.client().request(method, path, None, data,
                                {"Content-Type": "application/json"}, check=False)
    try:
        return r.status, json.loads(r.read() or b"null")
    finally:
        r.close()


@pytest.mark.parametrize("method,path", [
    ("GET", "/swarm"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"),
    ("POST", "/swarm/update?version=1"),
    ("GET", "/services"), ("GET", "/services?filters=%7B%7D"), ("GET", "/services/abc"),
    ("POST", "/services/create"), ("DELETE", "/services/abc"),
    ("POST", "/services/abc/update?version=1"), ("GET", "/services/abc/logs?stdout=1"),
    ("GET", "/tasks"), ("GET", "/tasks/abc"), ("GET", "/tasks/abc/logs?stderr=1"),
    ("GET", "/nodes"), ("GET", "/nodes/abc"), ("DELETE", "/nodes/abc"),
    ("POST", "/nodes/abc/update?version=1"),
    ("GET", "/secrets"), ("GET", "/secrets/abc"), ("POST", "/secrets/create"),
    ("DELETE", "/secrets/abc"), ("POST", "/secrets/abc/update?version=1"),
    ("GET", "/configs"), ("GET", "/configs/abc"), ("POST", "/configs/create"),
    ("DELETE", "/configs/abc"), ("POST", "/configs/abc/update?version=1"),
])
def test_not_a_swarm_manager(daemon, method, path):
    body = {} if method == "POST" else None
    assert _call(daemon, method, path, body) == (503, {"message": NOT_MANAGER})


@pytest.mark.parametrize("method,path,status,message", [
    ("POST", "/swarm/leave", 503, "This node is not part of a swarm"),
    ("POST", "/swarm/leave?force=1", 503, "This node is not part of a swarm"),
    # checked before the cluster is asked
    ("POST", "/swarm/update", 400,
     "invalid swarm version '': strconv.ParseUint: parsing \"\": invalid syntax"),
    ("POST", "/swarm/update?version=abc", 400,
     "invalid swarm version 'abc': strconv.ParseUint: parsing \"abc\": invalid syntax"),
    ("POST", "/services/abc/update", 400,
     "invalid service version '': strconv.ParseUint: parsing \"\": invalid syntax"),
    ("POST", "/nodes/abc/update", 400,
     "invalid node version '': strconv.ParseUint: parsing \"\": invalid syntax"),
    ("POST", "/secrets/abc/update", 400, "invalid secret version"),
    ("POST", "/configs/abc/update", 400, "invalid config version"),
    ("GET", "/services/abc/logs", 500, "Bad parameters: you must choose at least one stream"),
    ("GET", "/tasks/abc/logs?stdout=0", 500,
     "Bad parameters: you must choose at least one stream"),
])
def test_swarm_errors_as_dockerd(daemon, method, path, status, message):
    body = {} if method == "POST" else None
    assert _call(daemon, method, path, body) == (status, {"message": message})


def test_docker_py_swarm_cleanup(daemon):
    docker = pytest.importorskip("docker")
    api = docker.APIClient(base_url=daemon.host)
    try:
        assert api.leave_swarm(force=True) is True  # docker-py takes 503 as "left"
        with pytest.raises(docker.errors.APIError) as e:
            api.leave_swarm()
        assert e.value.status_code == 503
        for call in (api.services, api.nodes, api.tasks, api.secrets, api.configs,
                     api.inspect_swarm):
            with pytest.raises(docker.errors.APIError) as e:
                call()
            assert e.value.status_code == 503 and "not a swarm manager" in str(e.value)
        assert api.info()["Swarm"]["LocalNodeState"] == "inactive"
    finally:
        api.close()
    client = docker.DockerClient(base_url=daemon.host)
    try:
        # the Swarm model reloads at creation and takes 503 as "no swarm"
        assert client.swarm.attrs == {} and client.swarm.leave(force=True) is True
    finally:
        client.close()
