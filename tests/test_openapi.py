"""The daemon's OpenAPI description (GET /openapi.json) is generated from its
route table, and schemathesis drives every described operation of a live
daemon with generated requests, valid and invalid: none may answer 5xx, and
the daemon must still be up afterwards."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest

from conftest import Daemon, mounts_under, unmount_all
from dockyard.daemon.openapi import OPERATIONS, SWARM_ROUTES

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

# Tar bodies (load, archive PUT) are sent as the bytes generated.
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")

#: Generated cases per operation and mode: the whole module stays near 30 s.
EXAMPLES = 12

#: Left out of fuzzing, and why:
EXCLUDED = [
    # hijack the connection (the streaming ones that can end by themselves are
    # fuzzed with the query that makes them end: STREAMING)
    ("POST", "/containers/{id}/attach"), ("POST", "/exec/{id}/start"),
    # reach out to registries: slow or hanging without a network, not what this tests
    ("POST", "/images/create"), ("POST", "/images/{name}/push"), ("POST", "/auth"),
    ("GET", "/images/search"),
    # FROM pulls a missing image, and every build runs containers: test_build.py
    ("POST", "/build"),
    # a container joining a network sets up a bridge: test_network.py does that in a
    # network namespace of its own, this daemon runs in the host's
    ("POST", "/networks/{id}/connect"), ("POST", "/networks/{id}/disconnect"),
    # answer 503 by design, as a dockerd in no swarm does
    ("POST", "/swarm/leave"), ("POST", "/swarm/init"), ("POST", "/swarm/join"), *SWARM_ROUTES,
    # answer 501 by design, as a dockerd without experimental features does
    ("GET", "/containers/{id}/checkpoints"), ("POST", "/containers/{id}/checkpoints"),
    ("DELETE", "/containers/{id}/checkpoints/{checkpoint}"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    base = tmp_path_factory.mktemp("openapi")
    port = _free_port()
    d = Daemon(base, "vfs", ["-H", f"tcp://127.0.0.1:{port}", "--insecure-tcp"])
    url = f"http://127.0.0.1:{port}"
    try:
        d.start()
        yield d, url
    finally:
        if d.proc is not None and d.proc.poll() is None:
            # containers the fuzzing started would outlive the daemon in their shims
            for c in _call(url, "GET", "/containers/json?all=1")[1] or []:
                _call(url, "DELETE", f"/containers/{c['Id']}?force=1")
        d.stop()
        leaked = mounts_under(base)
        unmount_all(base)
        assert not leaked, f"mounts left behind: {leaked}"


def _call(url: str, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
            return r.status, json.loads(data) if data else None
    except urllib.error.HTTPError as e:
        return e.code, None


def _get(url: str) -> dict:
    status, data = _call(url, "GET", "")
    assert status == 200
    return data


def test_description_matches_the_routes(api):
    d, url = api
    doc = _get(f"{url}/openapi.json")
    assert doc == _get(f"{url}/v1.41/openapi.json")
    assert doc["openapi"].startswith("3.") and doc["info"]["version"] == "1.41"
    paths = doc["paths"]
    assert set(paths["/_ping"]) == {"get", "head"}
    assert "/images/{name}/json" in paths  # aiohttp's {name:.+} written as OpenAPI's
    create = paths["/containers/create"]["post"]
    assert create["requestBody"]["required"]
    assert {p["name"] for p in paths["/containers/json"]["get"]["parameters"]} >= {
        "all", "limit", "size", "filters"}
    # every route the daemon serves is described with its parameters
    described = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    assert described == set(OPERATIONS)
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for method, path in EXCLUDED:
        assert method.lower() in paths[path], (method, path)


@pytest.fixture(scope="module")
def api_schema(api):
    _, url = api
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def target(api, busybox_tar):
    """A real image and a created container, so that generated requests get past
    the lookup of {id} and {name}; made again if a prune took them."""
    d, url = api
    d.cli("import", str(busybox_tar), "busybox:latest")

    def ensure() -> dict[str, str]:
        if _call(url, "GET", "/images/busybox:latest/json")[0] != 200:
            d.cli("import", str(busybox_tar), "busybox:latest")  # an image prune took it
        ids = [c["Id"] for c in _call(url, "GET", "/containers/json?all=1")[1] or []]
        if not ids:
            status, c = _call(url, "POST", "/containers/create",
                              {"Image": "busybox", "Cmd": ["true"]})
            assert status == 201, status
            ids = [c["Id"]]
        return {"id": ids[0], "name": "busybox:latest"}

    return ensure


FUZZED = [k for k in OPERATIONS if k not in EXCLUDED]
#: Streaming operations, fuzzed with the query that makes them end at once
#: (else they would wait for a container or an event that never comes).
STREAMING = {("GET", "/containers/{id}/logs"): {"follow": "0"},
             ("GET", "/containers/{id}/stats"): {"stream": "0"},
             ("POST", "/containers/{id}/wait"): {"condition": "not-running"},
             ("GET", "/events"): {"until": "1"}}
MODES = {"valid": GenerationMode.POSITIVE, "invalid": GenerationMode.NEGATIVE,
         # valid requests on the real container and image; removing them is left out
         "known": GenerationMode.POSITIVE}
CASES = [(mode, m, p) for mode in MODES for m, p in FUZZED
         if mode != "known" or ("{" in p and m != "DELETE")]


@pytest.mark.parametrize("mode,method,path", CASES, ids=[" ".join(c) for c in CASES])
def test_no_server_errors(api_schema, api, target, mode, method, path):
    _, url = api
    op = api_schema[path][method]
    kw: dict[str, Any] = {}
    if mode == "known":
        kw["path_parameters"] = {k: v for k, v in target().items() if "{" + k + "}" in path}
    if (method, path) in STREAMING:
        kw["query"] = STREAMING[method, path]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(op.as_strategy(generation_mode=MODES[mode], **kw))
    def run(case):
        case.call_and_validate(base_url=url, checks=[not_a_server_error], timeout=30)

    try:
        run()
    except Unsatisfiable:
        pass  # nothing in this operation's description can be made invalid


#: Path parameters as an attacker writes them: climbing, encoded slashes and
#: dots, NULs, bad escapes, huge, numbers out of range, a filter-like string.
HOSTILE = ["..", "%2e%2e", "..%2F..%2F..%2Fetc%2Fpasswd", "%2F", "a%2Fb", "%00", "a%00b",
           "%ff%fe", "%", "x" * 5000, "-1", "99999999999999999999999", "%C3%A9",
           "busybox%3Alatest%2F..", "sha256:" + "0" * 64, "%0d%0aX-Injected:%201", "*"]
#: 503/501 by design (no swarm, no experimental features)
BY_DESIGN_5XX = {*SWARM_ROUTES, ("POST", "/swarm/leave"), ("POST", "/swarm/init"),
                 ("POST", "/swarm/join"), ("GET", "/containers/{id}/checkpoints"),
                 ("POST", "/containers/{id}/checkpoints"),
                 ("DELETE", "/containers/{id}/checkpoints/{checkpoint}")}


def test_hostile_path_parameters(api, target):
    """Every route with a path parameter, each hostile value in each parameter:
    a 4xx (or a 2xx where the value happens to name nothing harmful), never a
    5xx or a hang."""
    d, url = api
    target()
    port = int(url.rsplit(":", 1)[1])
    failures = []
    for method, path in OPERATIONS:
        if "{" not in path or (method, path) in BY_DESIGN_5XX:
            continue
        for value in HOSTILE:
            raw = re.sub(r"\{[^}]+\}", value, path)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                body = b"{}" if method in ("POST", "PUT") else b""
                s.sendall(f"{method} /v1.41{raw} HTTP/1.1\r\nHost: x\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                          f"Connection: close\r\n\r\n".encode() + body)
                head = s.recv(64).split(b"\r\n", 1)[0]
            try:
                status = int(head.split()[1])
            except (IndexError, ValueError):
                failures.append((method, raw[:80], head))
                continue
            if status >= 500:
                failures.append((method, raw[:80], status))
    assert failures == []
    assert d.proc is not None and d.proc.poll() is None


def test_daemon_still_alive(api):
    d, url = api
    assert d.proc is not None and d.proc.poll() is None
    with urllib.request.urlopen(f"{url}/_ping", timeout=10) as r:
        assert r.read() == b"OK"
