"""Stages built side by side (issue 14, speed): the stream stays dockerd
20.10's classic sequence byte for byte (IDs normalized), the images and
cache hits are a sequential build's, a failing stage reports at its place
with the later stages stopped and cleaned up, a client going away stops
every stage; and the opt-in skipping of unused stages."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from typing import Any

import pytest
from conftest import Daemon, kill_containers_left, mounts_under, unmount_all
from test_build import context_tar, messages, normalized, post_build


@pytest.fixture(scope="module")
def bbd(daemon, bb):
    return daemon


@pytest.fixture(scope="module")
def ref(ref_dockerd, busybox_tar):
    ref_dockerd.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    return ref_dockerd


def _extra_daemon(tmp_path_factory, busybox_tar, env: dict[str, str]):
    base = tmp_path_factory.mktemp("daemon-stages")
    d = Daemon(base, "overlay")
    d.daemon_env = env
    try:
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d
    finally:
        d.stop()
        left = kill_containers_left(base)
        leaked = mounts_under(base)
        unmount_all(base)
        assert not leaked and not left


@pytest.fixture(scope="module")
def seqd(tmp_path_factory, busybox_tar):
    """A daemon building one stage after the other."""
    yield from _extra_daemon(tmp_path_factory, busybox_tar, {"DOCKYARD_BUILD_JOBS": "1"})


def _stages_dockerfile(token: str) -> str:
    # Three independent stages (two repeat the first steps of the first on the
    # same base: a sequential build hits the cache there), one on top of
    # another stage, an unused one, and a final stage copying from them by
    # name and by index.
    return f"""ARG BASE=busybox
FROM $BASE AS one
ENV token={token}
RUN echo one > /one && echo one-out
RUN for i in 1 2 3; do echo $i > /one-$i; done
FROM busybox AS two
ENV token={token}
RUN echo one > /one && echo one-out
RUN echo two > /two
FROM two AS twoplus
ARG extra=x
RUN echo $extra > /extra
FROM busybox AS unused
RUN echo unused {token} > /unused
FROM busybox AS three
LABEL t={token}
RUN mkdir /three && echo 3 > /three/f && echo three-err >&2
FROM busybox
LABEL final={token}
COPY --from=one /one-2 /got/one
COPY --from=twoplus /two /extra /got/
COPY --from=4 /three /got/three
RUN echo $(cat /got/one /got/two /got/extra /got/three/f)
"""


def _steps(body: bytes) -> list[str]:
    return [m["stream"] for m in messages(body) if m.get("stream", "").startswith("Step ")]


def test_parallel_stream_is_dockerds(bbd, ref):
    token = uuid.uuid4().hex
    ctx = context_tar({"Dockerfile": _stages_dockerfile(token)})
    # Cold: the repeated steps of stage two hit what stage one made.
    got = []
    for query in ("t=stages:1", "t=stages:1", "t=stages:1&nocache=1"):
        ours = post_build(bbd.host, ctx, query)
        theirs = post_build(ref.host, ctx, query)
        assert ours[0] == theirs[0] == 200
        assert normalized(ours[2]) == normalized(theirs[2]), query
        got.append(ours[2])
    assert b"errorDetail" not in got[0] and b"Using cache" in got[0]
    assert b"Running in" not in got[1]  # all cache the second time


def _layers_view(daemon, body: bytes) -> list[Any]:
    """The image of each stage (aux) and its steps (history), without what
    differs between two builds (IDs, times)."""
    out = []
    for m in messages(body):
        if "aux" in m:
            info = daemon.client().get_json(f"/images/{m['aux']['ID']}/json")
            hist = daemon.client().get_json(f"/images/{m['aux']['ID']}/history")
            cfg = {k: v for k, v in info["Config"].items() if k != "Image"}
            # (Layer digests differ between two builds: the files' mtimes.)
            out.append((len(info["RootFS"].get("Layers") or []), cfg,
                        [(h["CreatedBy"], h["Size"]) for h in hist]))
    return out


def test_same_images_as_a_sequential_build(bbd, seqd):
    token = uuid.uuid4().hex
    ctx = context_tar({"Dockerfile": _stages_dockerfile(token)})
    par = post_build(bbd.host, ctx, "t=same:1")[2]
    seq = post_build(seqd.host, ctx, "t=same:1")[2]
    assert b"errorDetail" not in par
    # The same cache hits in the same places, the same layers and configs.
    assert normalized(par) == normalized(seq)
    assert json.dumps(_layers_view(bbd, par), indent=1).splitlines() == \
        json.dumps(_layers_view(seqd, seq), indent=1).splitlines()
    # And the same IDs as the build before: a rebuild is all cache.
    again = post_build(bbd.host, ctx, "t=same:1")[2]
    aux = [m["aux"]["ID"] for m in messages(par) if "aux" in m]
    assert [m["aux"]["ID"] for m in messages(again) if "aux" in m] == aux


def _containers(daemon) -> list[dict[str, Any]]:
    return daemon.client().get_json("/containers/json", {"all": 1})


def test_failing_stage_reports_in_order_and_stops_the_rest(bbd, ref):
    token = uuid.uuid4().hex
    df = f"""FROM busybox AS slow
RUN sleep 1; echo slow {token}
FROM busybox AS bad
RUN echo bad {token}; exit 3
RUN echo never
FROM busybox AS long
RUN echo long {token}; sleep 60
FROM busybox
COPY --from=slow /bin/true /t
"""
    ctx = context_tar({"Dockerfile": df})
    before = {c["Id"] for c in _containers(bbd)}
    t0 = time.monotonic()
    ours = post_build(bbd.host, ctx, "forcerm=1&t=bad:1")
    assert time.monotonic() - t0 < 50  # the long stage was stopped, not waited for
    theirs = post_build(ref.host, ctx, "forcerm=1&t=bad:1")
    assert normalized(ours[2]) == normalized(theirs[2])
    last = messages(ours[2])[-1]
    assert last["errorDetail"] == {"code": 3, "message": "The command '/bin/sh -c echo bad "
                                   f"{token}; exit 3' returned a non-zero code: 3"}
    assert b"long " + token.encode() not in ours[2]
    # Every container of the build is gone (forcerm), the stopped stage's too.
    deadline = time.monotonic() + 10
    while {c["Id"] for c in _containers(bbd)} - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not {c["Id"] for c in _containers(bbd)} - before
    assert not any((bbd.root / "builder").iterdir())
    r = bbd.client().request("GET", "/images/bad:1/json", check=False)
    assert r.status == 404
    r.close()


def test_client_going_away_stops_every_stage(bbd):
    token = uuid.uuid4().hex
    df = f"""FROM busybox AS a
RUN echo a {token}; sleep 60
FROM busybox AS b
RUN echo b {token}; sleep 60
FROM busybox
COPY --from=a /bin/true /a
COPY --from=b /bin/true /b
"""
    body = context_tar({"Dockerfile": df})
    before = {c["Id"] for c in _containers(bbd)}
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(bbd.sock))
    try:
        s.sendall(b"POST /v1.41/build?nocache=1 HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-tar\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        # Both stages' containers run (the second's output is held back).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            mine = [c for c in _containers(bbd) if c["Id"] not in before
                    and c["State"] == "running"]
            if len(mine) == 2:
                break
            time.sleep(0.2)
        assert len(mine) == 2
    finally:
        s.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = {c["Id"] for c in _containers(bbd)} - before
        if not left and not any((bbd.root / "builder").iterdir()):
            break
        time.sleep(0.2)
    assert not left
    assert not any((bbd.root / "builder").iterdir())


@pytest.fixture(scope="module")
def skipd(tmp_path_factory, busybox_tar):
    """A daemon that skips the stages the target does not need."""
    yield from _extra_daemon(tmp_path_factory, busybox_tar,
                             {"DOCKYARD_BUILD_SKIP_UNUSED_STAGES": "1"})


def test_skip_unused_stages_opt_in(skipd):
    token = uuid.uuid4().hex
    ctx = context_tar({"Dockerfile": _stages_dockerfile(token)})
    body = post_build(skipd.host, ctx, "t=skip:1")[2]
    assert b"errorDetail" not in body, body
    steps = _steps(body)
    # The unused stage is neither built nor counted; the rest keep dockerd's order.
    assert not any("unused" in s for s in steps)
    total = 1 + 4 + 4 + 3 + 3 + 6
    assert steps[0] == f"Step 1/{total} : ARG BASE=busybox"
    assert steps[-1] == f"Step {total}/{total} : RUN echo $(cat /got/one /got/two " \
        "/got/extra /got/three/f)"
    assert len([m for m in messages(body) if "aux" in m]) == 5
    assert re.search(rb"Successfully tagged skip:1", body)
    # A target before the heavy stages builds only what it needs.
    body = post_build(skipd.host, ctx, "target=twoplus&nocache=1")[2]
    assert [s.split(" : ")[1] for s in _steps(body)] == [
        "ARG BASE=busybox", "FROM busybox AS two", f"ENV token={token}",
        "RUN echo one > /one && echo one-out", "RUN echo two > /two",
        "FROM two AS twoplus", "ARG extra=x", "RUN echo $extra > /extra"]
    assert json.loads(body.split(b"\r\n")[0])["stream"].startswith("Step 1/8")


def test_trigger_reading_a_stage_waits_for_it(bbd, ref):
    # An ONBUILD COPY --from names a stage no FROM or COPY line of the child
    # reads: the child starts beside that stage and waits for it at the step.
    token = uuid.uuid4().hex
    df = f"""FROM busybox AS base
RUN sleep 1; echo {token} > /b
FROM busybox AS trig
ONBUILD COPY --from=base /b /from-trigger
FROM trig
RUN cat /from-trigger
"""
    ctx = context_tar({"Dockerfile": df})
    ours = post_build(bbd.host, ctx, "nocache=1")
    theirs = post_build(ref.host, ctx, "nocache=1")
    assert normalized(ours[2]) == normalized(theirs[2])
    assert f'{{"stream":"{token}\\n"}}'.encode() in ours[2]
