"""`POST /build`: the classic builder against our daemon (transcripts pinned
from dockerd 20.10 with DOCKER_BUILDKIT=0, configs and history, cache,
failure hygiene), docker-py's build and the docker CLI."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import re
import socket
import tarfile
from pathlib import Path
from typing import Any

import pytest


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        self.sock = s


def context_tar(files: dict[str, str | bytes], compression: str = "") -> bytes:
    buf = io.BytesIO()
    mode = {"": "w", "gz": "w:gz", "bz2": "w:bz2", "xz": "w:xz"}[compression]
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def post_build(host: str, body: bytes, query: str = "") -> tuple[int, dict[str, str], bytes]:
    """A raw POST /build; (status, headers, body)."""
    conn = _UnixConnection(host.removeprefix("unix://"))
    try:
        conn.request("POST", f"/v1.41/build?{query}", body=body,
                     headers={"Content-Type": "application/x-tar"})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def messages(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.split(b"\r\n") if line.strip()]


_ID64 = re.compile(rb"[0-9a-f]{64}")
_ID12 = re.compile(rb"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])")


def normalized(body: bytes) -> bytes:
    return _ID12.sub(b"@id@", _ID64.sub(b"@ID@", body))


def build(daemon, files: dict[str, str | bytes], query: str = "") -> tuple[int, bytes]:
    status, _, body = post_build(daemon.host, context_tar(files), query)
    return status, body


def image_id_of(body: bytes) -> str:
    for m in messages(body):
        if "aux" in m:
            last = m["aux"]["ID"]
    return last


def raw_config(daemon, image: str) -> dict[str, Any]:
    return daemon.client().get_json(f"/images/{image}/json")


@pytest.fixture(scope="module")
def bbd(daemon, bb):
    return daemon


# --- transcripts pinned from dockerd 20.10 (DOCKER_BUILDKIT=0), IDs normalized ------------

META_DOCKERFILE = """FROM busybox
ENV a=b c="d e"
LABEL x=y
RUN echo hi && echo err >&2
WORKDIR /app
EXPOSE 80/tcp 90
USER root
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD true
SHELL ["/bin/sh", "-c"]
ARG foo=bar
ONBUILD RUN echo trig
MAINTAINER me
ENTRYPOINT ["/bin/sh"]
CMD ["-c", "echo"]
RUN echo $foo > /tmp/f
"""

# dockerd prints RUN's stderr and stdout in the order they arrive; the echo
# to stderr comes second here so that the order is the same on both.


def _meta_expected() -> bytes:
    steps = META_DOCKERFILE.strip().split("\n")
    out = []

    def s(text: str) -> None:
        out.append(json.dumps({"stream": text}, separators=(",", ":")).replace("&", "\\u0026")
                   .replace(">", "\\u003e").replace("<", "\\u003c"))

    for i, line in enumerate(steps, 1):
        s(f"Step {i}/17 : {line}")
        s("\n")
        if i == 1:
            s(" ---> @id@\n")
            continue
        s(" ---> Running in @id@\n")
        if line.startswith("RUN echo hi"):
            s("hi\n")
            s("\x1b[91merr\n\x1b[0m")
        s("Removing intermediate container @id@\n")
        s(" ---> @id@\n")
    out.append('{"aux":{"ID":"sha256:@ID@"}}')
    s("[Warning] One or more build-args [unused] were not consumed\n")
    s("Successfully built @id@\n")
    s("Successfully tagged c1:latest\n")
    s("Successfully tagged c1b:latest\n")
    return ("\r\n".join(out) + "\r\n").encode()


def test_metadata_and_run_transcript(bbd):
    df = META_DOCKERFILE.replace("RUN echo hi && echo err >&2",
                                 "RUN echo hi && sleep 0.2 && echo err >&2")
    status, body = build(bbd, {"Dockerfile": df},
                         "t=c1:latest&t=c1b&buildargs=%7B%22foo%22%3A%22baz%22%2C"
                         "%22unused%22%3A%22x%22%7D")
    assert status == 200
    exp = _meta_expected().replace(b"RUN echo hi \\u0026\\u0026 echo err",
                                   b"RUN echo hi \\u0026\\u0026 sleep 0.2 \\u0026\\u0026 echo err")
    assert normalized(body) == exp
    cfg = raw_config(bbd, "c1")
    c = cfg["Config"]
    assert c["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "a=b", "c=d e"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "90/tcp": {}}
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5000000000}
    assert c["Volumes"] == {"/data": {}}
    assert c["WorkingDir"] == "/app"
    assert c["Entrypoint"] == ["/bin/sh"]
    assert c["Cmd"] == ["-c", "echo"]
    assert c["OnBuild"] == ["RUN echo trig"]
    assert c["Labels"] == {"x": "y"}
    assert c["StopSignal"] == "SIGTERM"
    assert c["Shell"] == ["/bin/sh", "-c"]
    assert c["User"] == "root"
    assert cfg["Author"] == "me"
    assert cfg["ContainerConfig"]["Cmd"] == ["|1", "foo=baz", "/bin/sh", "-c",
                                             "echo $foo > /tmp/f"]
    hist = bbd.client().get_json("/images/c1/history")
    created_by = [h["CreatedBy"] for h in reversed(hist)][1:]
    assert created_by == [
        "/bin/sh -c #(nop)  ENV a=b c=d e",
        "/bin/sh -c #(nop)  LABEL x=y",
        "/bin/sh -c echo hi && sleep 0.2 && echo err >&2",
        "/bin/sh -c #(nop) WORKDIR /app",
        "/bin/sh -c #(nop)  EXPOSE 80/tcp 90",
        "/bin/sh -c #(nop)  USER root",
        "/bin/sh -c #(nop)  VOLUME [/data]",
        "/bin/sh -c #(nop)  STOPSIGNAL SIGTERM",
        "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"5s\" \"0s\" \"0s\" '\\x00'}",
        "/bin/sh -c #(nop)  SHELL [/bin/sh -c]",
        "/bin/sh -c #(nop)  ARG foo=bar",
        "/bin/sh -c #(nop)  ONBUILD RUN echo trig",
        "/bin/sh -c #(nop)  MAINTAINER me",
        "/bin/sh -c #(nop)  ENTRYPOINT [\"/bin/sh\"]",
        "/bin/sh -c #(nop)  CMD [\"-c\" \"echo\"]",
        "|1 foo=baz /bin/sh -c echo $foo > /tmp/f",
    ]
    # Every step's image is there, each the parent of the next (docker history shows IDs).
    assert all(h["Id"] != "<missing>" for h in hist)
    # WORKDIR and the last RUN wrote layers; the echo RUN and the metadata steps did not.
    assert len(cfg["RootFS"]["Layers"]) == 3
    # The RUN wrote its file.
    r = bbd.cli("run", "--rm", "--entrypoint", "cat", "c1", "/tmp/f")
    assert r.stdout == b"baz\n"
    # A rebuild is all cache hits and gives the same image.
    status, body2 = build(bbd, {"Dockerfile": df},
                          "t=c1:latest&buildargs=%7B%22foo%22%3A%22baz%22%7D")
    assert status == 200
    ms = [m.get("stream", "") for m in messages(body2)]
    assert ms.count(" ---> Using cache\n") == 16
    assert not any("Running in" in m for m in ms)
    assert image_id_of(body2) == cfg["Id"]
    # nocache builds again.
    status, body3 = build(bbd, {"Dockerfile": df},
                          "nocache=1&buildargs=%7B%22foo%22%3A%22baz%22%7D")
    assert b"Using cache" not in body3
    assert image_id_of(body3) != cfg["Id"]


def test_failing_run(bbd, no_leftover_containers):
    before = {c["Id"] for c in bbd.client().get_json("/containers/json", {"all": 1})}
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nRUN exit 3\n"}, "t=failing")
    assert status == 200
    last = messages(body)[-1]
    msg = "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    assert last == {"errorDetail": {"code": 3, "message": msg}, "error": msg}
    assert body.endswith(b'{"errorDetail":{"code":3,"message":"' + msg.encode()
                         + b'"},"error":"' + msg.encode() + b'"}\r\n')
    assert bbd.client().request("GET", "/images/failing/json", check=False).status == 404
    # rm (the default) keeps the failed container, as dockerd does; forcerm removes it.
    after = {c["Id"] for c in bbd.client().get_json("/containers/json", {"all": 1})}
    assert len(after - before) == 1
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nRUN exit 3\n"}, "forcerm=1")
    assert b"Removing intermediate container" in body
    assert {c["Id"] for c in bbd.client().get_json("/containers/json", {"all": 1})} == after
    # Nothing of the build directory is left.
    assert not any((bbd.root / "builder").iterdir())


def test_errors_before_output(bbd):
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nHELLO x\n"})
    assert (status, json.loads(body)) == (
        400, {"message": "dockerfile parse error line 2: unknown instruction: HELLO"})
    status, body = build(bbd, {"Dockerfile": "FROM busybox\n"}, "dockerfile=nope")
    assert (status, json.loads(body)) == (500, {"message": "Cannot locate specified Dockerfile: nope"})
    status, body = build(bbd, {"Dockerfile": "FROM busybox\n"}, "target=zz")
    assert (status, json.loads(body)) == (
        400, {"message": "failed to reach build target zz in Dockerfile"})
    status, body = build(bbd, {"Dockerfile": "FROM busybox\n"}, "version=2")
    assert status == 400 and b"DOCKER_BUILDKIT=0" in body
    status, body = build(bbd, {"Dockerfile": "FROM busybox\n"}, "squash=1")
    assert status == 400
    # A lowercase dockerfile is found when the default name is asked for.
    status, body = build(bbd, {"dockerfile": "FROM busybox\n"})
    assert status == 200 and b"Successfully built" in body


def test_ping_session_grpc(bbd):
    conn = _UnixConnection(str(bbd.sock))
    try:
        conn.request("GET", "/_ping")
        r = conn.getresponse()
        r.read()
        assert r.getheader("Builder-Version") == "1"
        for path in ("/session", "/grpc"):
            conn.request("POST", path)
            r = conn.getresponse()
            assert r.status == 404 and b"DOCKER_BUILDKIT=0" in r.read()
    finally:
        conn.close()


def test_multistage_scratch_copy_and_triggers(bbd):
    files = {"Dockerfile": "ARG B=busybox\nFROM scratch AS s0\nCOPY f /f\nFROM $B AS s1\n"
                           "COPY --from=s0 /f /g\nFROM trig\nRUN cat /g\n",
             "f": "hello\n"}
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nONBUILD COPY --from=s1 /g /g\n"},
                         "t=trig")
    assert status == 200
    status, body = build(bbd, files, "t=c2")
    assert status == 200, body
    streams = [m.get("stream") for m in messages(body)]
    assert streams[:8] == ["Step 1/7 : ARG B=busybox", "\n", "Step 2/7 : FROM scratch AS s0",
                           "\n", " ---> \n", "Step 3/7 : COPY f /f", "\n", streams[7]]
    assert re.fullmatch(r" ---> [0-9a-f]{12}\n", streams[7])
    assert "# Executing 1 build trigger" in streams
    assert "hello\n" in streams
    assert sum(1 for m in messages(body) if "aux" in m) == 3
    hist = bbd.client().get_json("/images/c2/history")
    assert hist[0]["CreatedBy"] == "/bin/sh -c cat /g"
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in /g ",
                        hist[1]["CreatedBy"])


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_compressed_context_and_dockerignore(bbd, compression):
    files = {"Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN ls -a /ctx\n",
             ".dockerignore": "secret\nDockerfile\n.dockerignore\n", "keep": "k", "secret": "s"}
    status, _, body = post_build(bbd.host, context_tar(files, compression), "nocache=1")
    assert status == 200, body
    listing = "".join(m.get("stream", "") for m in messages(body)).split("RUN ls -a /ctx")[1]
    # The client filters the context; the daemon only drops the Dockerfile and
    # .dockerignore when the rules match them (dockerd's removeDockerfile).
    assert "keep" in listing and "secret" in listing
    assert "Dockerfile" not in listing and ".dockerignore" not in listing


def test_context_cannot_escape(bbd, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        df = b"FROM busybox\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        t.addfile(info, io.BytesIO(df))
        info = tarfile.TarInfo("../../../../../../tmp/buildexec-escape")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    status, _, body = post_build(bbd.host, buf.getvalue())
    assert status >= 400
    assert not Path("/tmp/buildexec-escape").exists()


def test_quiet(bbd):
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nENV q=1\n"}, "q=1")
    assert status == 200
    ms = messages(body)
    assert len(ms) == 1 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", ms[0]["stream"])
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nRUN exit 2\n"}, "q=true")
    ms = messages(body)
    assert ms[0] == {"stream": "Step 1/2 : FROM busybox"}
    assert ms[-1]["errorDetail"]["code"] == 2


def test_copy_cache_keys_on_content(bbd):
    df = "FROM busybox\nCOPY a /a\n"
    _, b1 = build(bbd, {"Dockerfile": df, "a": "one"})
    _, b2 = build(bbd, {"Dockerfile": df, "a": "one"})
    assert b"Using cache" in b2 and image_id_of(b1) == image_id_of(b2)
    _, b3 = build(bbd, {"Dockerfile": df, "a": "two"})
    assert b"Using cache" not in b3


def test_labels_option_and_run_exec_form(bbd):
    status, body = build(bbd, {"Dockerfile": 'FROM busybox\nRUN ["echo", "exec"]\n'},
                         "labels=%7B%22b%22%3A%222%22%2C%22a%22%3A%221%22%7D&t=lab")
    assert status == 200
    streams = [m.get("stream") for m in messages(body)]
    assert "Step 3/4 : LABEL a=1" in streams and "Step 4/4 : LABEL b=2" in streams
    assert "exec\n" in streams
    assert raw_config(bbd, "lab")["Config"]["Labels"] == {"a": "1", "b": "2"}


def test_docker_py_build(bbd):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=bbd.host, version="1.41")
    try:
        img, logs = client.images.build(
            fileobj=io.BytesIO(b"FROM busybox\nRUN echo from-py\nCMD [\"true\"]\n"),
            tag="pybuilt", rm=True)
        assert img.tags == ["pybuilt:latest"]
        assert any("from-py" in (line.get("stream") or "") for line in logs)
        with pytest.raises(docker.errors.BuildError):
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN false\n"), forcerm=True)
    finally:
        client.close()


def test_docker_cli_classic_build(bbd, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY hello /hello\nRUN cat /hello\n")
    (ctx / "hello").write_text("from the cli\n")
    env_extra = {"DOCKER_BUILDKIT": "0"}
    import os
    import subprocess

    from conftest import DOCKER_CLI
    if DOCKER_CLI is None:
        pytest.skip("the docker CLI is not installed")
    env = dict(bbd.env(), **env_extra, DOCKER_CONFIG=str(bbd.base / "docker-config"))
    iid = tmp_path / "iid"
    r = subprocess.run([DOCKER_CLI, "build", "-t", "clibuilt", "--iidfile", str(iid), str(ctx)],
                       env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"from the cli" in r.stdout
    assert b"Successfully tagged clibuilt:latest" in r.stdout
    assert iid.read_text().startswith("sha256:")
    r = subprocess.run([DOCKER_CLI, "build", "-q", str(ctx)], env=env, capture_output=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.decode().strip() == iid.read_text()
    # `-f -`: the CLI adds the Dockerfile to the context tar, which it ends right
    # after the last file's data (no padding, no end-of-archive blocks).
    r = subprocess.run([DOCKER_CLI, "build", "-f", "-", str(ctx)], env=env, capture_output=True,
                       input=b"FROM busybox\nCOPY hello /h\nRUN cat /h && ls -a /\n", timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"from the cli" in r.stdout and b".dockerfile" not in r.stdout
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    r = subprocess.run([DOCKER_CLI, "build", str(ctx)], env=env, capture_output=True,
                       timeout=120)
    assert r.returncode == 7
    _ = os


# --- docker-py's tests/integration/api_build_test.py, the offline busybox/alpine cases ---

@pytest.fixture(scope="module")
def api(bbd):
    docker = pytest.importorskip("docker")
    bbd.cli("tag", "busybox", "alpine:3.10")
    bbd.cli("tag", "busybox", "alpine:latest")
    client = docker.APIClient(base_url=bbd.host, version="1.41")
    yield client
    client.close()


def _drain(stream) -> list:
    return list(stream)


def test_dockerpy_proxy_buildargs(api):
    from docker.utils.proxy import ProxyConfig

    api._proxy_configs = ProxyConfig(ftp="a", http="b", https="c", no_proxy="d")
    try:
        script = "\n".join(["FROM busybox", 'RUN env | grep "FTP_PROXY=XXX"',
                            'RUN env | grep "ftp_proxy=xxx"', 'RUN env | grep "HTTP_PROXY=b"',
                            'RUN env | grep "no_proxy=d"']).encode()
        logs = _drain(api.build(fileobj=io.BytesIO(script), decode=True,
                                buildargs={"FTP_PROXY": "XXX", "ftp_proxy": "xxx"}))
        assert not any("error" in m for m in logs), logs
        # Proxy args stay out of the history unless declared.
        iid = [m["aux"]["ID"] for m in logs if "aux" in m][-1]
        hist = api.history(iid)
        assert hist[0]["CreatedBy"] == '|0 /bin/sh -c env | grep "no_proxy=d"' or \
            hist[0]["CreatedBy"].startswith("/bin/sh -c env")
    finally:
        api._proxy_configs = ProxyConfig()


def test_dockerpy_dockerignore_and_scratch_cases(api, tmp_path):
    base = tmp_path / "ctx"
    (base / "ignored" / "subdir").mkdir(parents=True)
    (base / "Dockerfile").write_text("FROM busybox\nADD . /test")
    (base / ".dockerignore").write_text("\n".join([
        "ignored", "Dockerfile", ".dockerignore", " ignored-with-spaces ",
        "!ignored/subdir/excepted-file", "! ignored/subdir/excepted-with-spaces  ", "#*"]))
    (base / "not-ignored").write_text("x")
    (base / "#file.txt").write_text("x")
    (base / "ignored-with-spaces").write_text("x")
    for n in ("file", "excepted-file", "excepted-with-spaces"):
        (base / "ignored" / "subdir" / n).write_text("x")
    _drain(api.build(path=str(base), tag="dpy-ignore"))
    c = api.create_container("dpy-ignore", ["find", "/test", "-type", "f"])
    try:
        api.start(c)
        api.wait(c)
        files = sorted(filter(None, api.logs(c).decode().split("\n")))
    finally:
        api.remove_container(c, force=True)
    assert files == sorted(["/test/#file.txt", "/test/ignored/subdir/excepted-with-spaces",
                            "/test/ignored/subdir/excepted-file", "/test/not-ignored"])
    # FROM scratch: buildargs, shmsize, isolation, labels.
    _drain(api.build(fileobj=io.BytesIO(b"FROM scratch\nARG test\nUSER $test"), tag="buildargs",
                     buildargs={"test": "OK"}))
    assert api.inspect_image("buildargs")["Config"]["User"] == "OK"
    _drain(api.build(fileobj=io.BytesIO(b"FROM scratch\nCMD sh -c \"echo 'Hello, World!'\""),
                     tag="shmsize", shmsize=134217728))
    _drain(api.build(fileobj=io.BytesIO(b"FROM scratch\nCMD sh -c \"echo 'Deaf'"),
                     tag="isolation", isolation="default"))
    _drain(api.build(fileobj=io.BytesIO(b"FROM scratch"), tag="labels", labels={"test": "OK"}))
    assert api.inspect_image("labels")["Config"]["Labels"] == {"test": "OK"}


def test_dockerpy_cache_from_and_target(api):
    script = b"FROM busybox\nENV FOO=bar\nRUN touch baz\nRUN touch bax"
    _drain(api.build(fileobj=io.BytesIO(script), tag="build1"))

    def hits(**kw) -> int:
        return sum("Using cache" in m.get("stream", "")
                   for m in api.build(fileobj=io.BytesIO(script), tag="build2", decode=True, **kw))

    assert hits(cache_from=["build1"]) == 3
    api.remove_image("build2")
    assert hits(cache_from=["nosuchtag"]) == 0
    script = "\n".join(["FROM busybox as first", "RUN mkdir -p /tmp/test",
                        "RUN touch /tmp/silence.tar.gz", "FROM alpine:latest",
                        "WORKDIR /root/" "COPY --from=first /tmp/silence.tar.gz .",
                        'ONBUILD RUN echo "This should not be in the final image"']).encode()
    _drain(api.build(fileobj=io.BytesIO(script), target="first", tag="build1"))
    assert not api.inspect_image("build1")["Config"]["OnBuild"]


def test_dockerpy_network_none_extra_hosts_stderr(api):
    script = b"FROM busybox\nRUN nc -w 1 203.0.113.1 80 </dev/null"
    logs = _drain(api.build(fileobj=io.BytesIO(script), network_mode="none", nocache=True,
                            tag="dpy-none", decode=True))
    assert logs[-1]["errorDetail"]["code"] == 1
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.NotFound):
        api.inspect_image("dpy-none")
    script = b"FROM busybox\nRUN cp /etc/hosts /hosts-file"
    logs = _drain(api.build(fileobj=io.BytesIO(script), tag="dpy-hosts", nocache=True,
                            extra_hosts={"extrahost.local.test": "127.0.0.1",
                                         "hello.world.test": "127.0.0.1"}, decode=True))
    assert not any("errorDetail" in m for m in logs), logs
    c = api.create_container("dpy-hosts", ["cat", "/hosts-file"])
    try:
        api.start(c)
        api.wait(c)
        hosts = api.logs(c).decode()
    finally:
        api.remove_container(c, force=True)
    assert "127.0.0.1\textrahost.local.test" in hosts
    assert "127.0.0.1\thello.world.test" in hosts
    snippet = "Ancient Temple (Mystic Oriental Dream ~ Ancient Temple)"
    script = b"FROM busybox\n" + f"RUN sh -c \">&2 echo '{snippet}'\"".encode()
    lines = [m.get("stream") for m in api.build(fileobj=io.BytesIO(script), decode=True,
                                                nocache=True)]
    assert f"\x1b[91m{snippet}\n\x1b[0m" in lines


def test_dockerpy_gzip_dockerfile_locations(api, tmp_path):
    base = tmp_path / "ctx"
    base.mkdir()
    (base / "Dockerfile").write_text("FROM busybox\nADD . /test")
    lines = _drain(api.build(path=str(base), decode=True, nocache=True, gzip=True))
    assert "Successfully built" in lines[-1]["stream"]
    (base / ".dockerignore").write_text("   \n\n\t\t\n\t     ")
    lines = _drain(api.build(path=str(base), decode=True, nocache=True))
    assert "Successfully built" in lines[-1]["stream"]

    def ls(img: str) -> list[bytes]:
        c = api.create_container(img, "ls -a")
        try:
            api.start(c)
            api.wait(c)
            return sorted(api.logs(c).strip().split(b"\n"))
        finally:
            api.remove_container(c, force=True)

    df = "\n".join(["FROM busybox", "COPY . /src", "WORKDIR /src"])
    ctx = tmp_path / "ctx2"
    (ctx / "hello" / "world").mkdir(parents=True)
    (ctx / "file.txt").write_text("hello world")
    (ctx / ".dockerignore").write_text(".dockerignore\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text(df)
    lines = _drain(api.build(path=str(ctx), dockerfile=str(outside / "Dockerfile"),
                             tag="dpy-out", decode=True))
    assert "Successfully tagged" in lines[-1]["stream"]
    assert ls("dpy-out") == [b".", b"..", b"file.txt", b"hello"]
    (ctx / "hello" / "world" / "custom.dockerfile").write_text(df)
    lines = _drain(api.build(path=str(ctx), dockerfile="hello/world/custom.dockerfile",
                             tag="dpy-nested", decode=True))
    assert "Successfully tagged" in lines[-1]["stream"]
    assert ls("dpy-nested") == [b".", b"..", b"file.txt", b"hello"]
    (ctx / "custom.dockerfile").write_text(df)
    lines = _drain(api.build(path=str(ctx), dockerfile=str(ctx / "custom.dockerfile"),
                             tag="dpy-abs", decode=True))
    assert "Successfully tagged" in lines[-1]["stream"]
    assert ls("dpy-abs") == [b".", b"..", b"custom.dockerfile", b"file.txt", b"hello"]
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.APIError) as e:
        _drain(api.build(fileobj=io.BytesIO(b"FROM busybox\n"), platform="foobar"))
    assert "unknown operating system" in e.exconly()
    assert "SpaceReclaimed" in api.prune_builds()


# --- side by side with a reference dockerd 20.10 (classic builder) ------------------------

SIDE_BY_SIDE = {
    "metadata": ({"Dockerfile": META_DOCKERFILE.replace(" && echo err >&2", "")},
                 "t=sbs1&buildargs=%7B%22foo%22%3A%22baz%22%2C%22unused%22%3A%22x%22%7D"),
    "stderr": ({"Dockerfile": "FROM busybox\nRUN echo oops >&2\nCMD echo hi\n"}, "t=sbs2"),
    "multistage": ({"Dockerfile": "ARG B=busybox\nFROM scratch AS s0\nCOPY f /f\nFROM $B AS s1\n"
                                  "COPY --from=s0 /f /g\nWORKDIR /w/x\nRUN cat /g\n"
                                  "ENTRYPOINT echo\nFROM s1\nARG X\nRUN echo $X\n",
                    "f": "hello\n"}, "t=sbs3&buildargs=%7B%22X%22%3A%22y%22%7D"),
    "target": ({"Dockerfile": "FROM busybox AS a\nLABEL a=1\nFROM a\nLABEL b=2\n"},
               "t=sbs5&target=a&labels=%7B%22l%22%3A%22v%22%7D"),
    "fail": ({"Dockerfile": "FROM busybox\nRUN echo out; exit 4\n"}, "rm=0"),
    "quiet-fail": ({"Dockerfile": "FROM busybox\nENV a=1\nRUN exit 2\n"}, "q=1"),
    "quiet": ({"Dockerfile": "FROM busybox\nENV a=1\n"}, "q=1"),
    "parse-error": ({"Dockerfile": "FROM busybox\nHELLO x\n"}, ""),
    "no-dockerfile": ({"Dockerfile": "FROM busybox\n"}, "dockerfile=nope"),
    "bad-target": ({"Dockerfile": "FROM busybox\n"}, "target=zz"),
    "bad-tag": ({"Dockerfile": "FROM busybox\n"}, "t=UPPER"),
    "copy-missing": ({"Dockerfile": "FROM busybox\nCOPY nope /x\n"}, ""),
    "copy-last": ({"Dockerfile": "FROM busybox\nWORKDIR /w\nCOPY f g\nWORKDIR /w\nCOPY f d/\n",
                   "f": "x\n"}, "t=sbs6"),
    "scratch-meta": ({"Dockerfile": "FROM scratch\nENV A=b\nLABEL a=b\nCMD [\"x\"]\n"}, "t=sbs7"),
    "onbuild": ({"Dockerfile": "FROM busybox AS base\nONBUILD ENV T=1\nONBUILD RUN echo $T\n"
                               "FROM base\nLABEL child=1\n"}, "t=sbs8"),
    "hc-merge": ({"Dockerfile": "FROM busybox AS a\nHEALTHCHECK --retries=3 CMD true\n"
                                "FROM a\nHEALTHCHECK --interval=5s CMD false\nENV x=1\n"},
                 "t=sbs9"),
    "healthcheck": ({"Dockerfile": "FROM busybox\nHEALTHCHECK --retries=3 --timeout=1m30s CMD ["
                                   "\"true\"]\nHEALTHCHECK NONE\nEXPOSE 8000-8001/udp\n"},
                    "t=sbs4"),
}


@pytest.fixture(scope="module")
def ref(ref_dockerd, busybox_tar):
    ref_dockerd.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    return ref_dockerd


def _inspect_view(info: dict[str, Any]) -> dict[str, Any]:
    def cfg(c: dict[str, Any] | None) -> dict[str, Any] | None:
        if c is None:
            return None
        out = {k: v for k, v in c.items() if k not in ("Hostname", "Image")}
        # COPY's content key: equal to dockerd's only for the docker CLI's tar headers
        # (sums from the unpacked tree); the side-by-side contexts come from tarfile.
        out["Cmd"] = [re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:@", a)
                      for a in out.get("Cmd") or []] or out.get("Cmd")
        return out
    return {"Config": cfg(info["Config"]), "ContainerConfig": cfg(info["ContainerConfig"]),
            "Author": info["Author"], "Architecture": info["Architecture"], "Os": info["Os"],
            "Layers": len(info["RootFS"].get("Layers") or []), "Comment": info["Comment"]}


@pytest.mark.parametrize("case", sorted(SIDE_BY_SIDE))
def test_side_by_side_with_dockerd(bbd, ref, case):
    files, query = SIDE_BY_SIDE[case]
    body = context_tar(files)
    ours = post_build(bbd.host, body, query + "&nocache=1")
    theirs = post_build(ref.host, body, query + "&nocache=1")
    assert ours[0] == theirs[0]
    if ours[0] != 200:
        # The daemon-wide error body (compared as JSON: its spacing is the daemon's).
        assert json.loads(ours[2]) == json.loads(theirs[2])
        return
    assert normalized(ours[2]) == normalized(theirs[2])
    if b"errorDetail" in ours[2] or b"aux" not in ours[2]:
        return
    tag = re.search(r"t=(\w+)", query)
    name = tag.group(1) if tag else image_id_of(ours[2])
    ref_name = name if tag else image_id_of(theirs[2])
    mine = bbd.client().get_json(f"/images/{name}/json")
    conn = _UnixConnection(str(ref.sock))
    try:
        conn.request("GET", f"/v1.41/images/{ref_name}/json")
        real = json.loads(conn.getresponse().read())
        conn.request("GET", f"/v1.41/images/{ref_name}/history")
        real_hist = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert json.dumps(_inspect_view(mine), indent=1).splitlines() == \
        json.dumps(_inspect_view(real), indent=1).splitlines()
    my_hist = bbd.client().get_json(f"/images/{name}/history")

    def view(hist: list[dict[str, Any]]) -> list[tuple[str, bool, bool]]:
        # COPY's content key: equal to dockerd's only for the docker CLI's tar headers
        # (sums from the unpacked tree); the side-by-side contexts come from tarfile.
        return [(re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:@", h["CreatedBy"]),
                 h["Size"] > 0, h["Id"] == "<missing>") for h in hist]
    assert view(my_hist) == view(real_hist)


def test_client_going_away_cancels_the_build(bbd):
    import time

    body = context_tar({"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(bbd.sock))
    try:
        s.sendall(b"POST /v1.41/build?nocache=1 HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-tar\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        got = b""
        deadline = time.monotonic() + 30
        while b'"started\\n"' not in got and time.monotonic() < deadline:
            got += s.recv(65536)
        assert b'"started\\n"' in got
        m = re.search(rb"Running in ([0-9a-f]{12})", got)
        assert m, got
        cid12 = m.group(1).decode()
    finally:
        s.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ids = [c["Id"][:12] for c in bbd.client().get_json("/containers/json", {"all": 1})]
        if cid12 not in ids and not any((bbd.root / "builder").iterdir()):
            break
        time.sleep(0.2)
    assert cid12 not in ids
    assert not any((bbd.root / "builder").iterdir())


def test_engine_start_sweeps_build_dirs(tmp_path):
    from conftest import NO_NETWORK

    from dockyard.engine import Engine

    left = tmp_path / "root" / "builder" / "0123456789abcdef" / "context"
    left.mkdir(parents=True)
    (left / "Dockerfile").write_text("FROM busybox\n")
    eng = Engine(tmp_path / "root", storage_driver="vfs", exec_root=tmp_path / "exec",
                 network_options=NO_NETWORK)
    try:
        assert not (tmp_path / "root" / "builder").exists()
        assert eng.builds.root.is_dir() and not any(eng.builds.root.iterdir())
    finally:
        eng.close()


def test_from_pulls_a_missing_image(bbd, registry, busybox_image):
    name = f"{registry.host}/test/busybox:latest"
    status, body = build(bbd, {"Dockerfile": f"FROM {name}\nRUN echo pulled\n"}, "nocache=1")
    assert status == 200, body
    ms = messages(body)
    assert ms[0] == {"stream": f"Step 1/2 : FROM {name}"}
    # The pull's progress comes between the step and the base image's ID, as with dockerd.
    assert any(m.get("status", "").startswith("Pulling from test/busybox") for m in ms)
    assert {"stream": "pulled\n"} in ms
    assert "Successfully built" in ms[-1]["stream"]


def test_docker_cli_side_by_side(bbd, ref, tmp_path):
    import subprocess

    from conftest import DOCKER_CLI
    if DOCKER_CLI is None:
        pytest.skip("the docker CLI is not installed")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nENV A=1\nCOPY f /f\nRUN cat /f\n"
                                    "LABEL done=yes\n")
    (ctx / "f").write_text("content\n")
    (ctx / ".dockerignore").write_text("ignored\n")
    (ctx / "ignored").write_text("x")

    def run(host: str, base: Path, *args: str) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0",
               "DOCKER_CONFIG": str(base / "docker-config")}
        return subprocess.run([DOCKER_CLI, "build", *args, str(ctx)], env=env,
                              capture_output=True, timeout=120)

    for args in (("--no-cache", "-t", "clisbs"), ("-t", "clisbs")):
        mine = run(bbd.host, bbd.base, *args)
        real = run(ref.host, ref.base, *args)
        assert mine.returncode == real.returncode == 0, (mine.stderr, real.stderr)
        # The context size line differs by the tar's padding at most: drop it.
        strip = lambda b: re.sub(rb"Sending build context to Docker daemon.*\n", b"",  # noqa: E731
                                 normalized(b))
        assert strip(mine.stdout) == strip(real.stdout)
        assert mine.stderr == real.stderr


def test_intermediates_listed_and_removed_with_the_image(bbd):
    def all_ids() -> set[str]:
        return {i["Id"] for i in bbd.client().get_json("/images/json", {"all": 1})}

    def top_ids() -> set[str]:
        return {i["Id"] for i in bbd.client().get_json("/images/json")}

    before_all, before_top = all_ids(), top_ids()
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nENV chain=1\nRUN echo x > /x\n"
                                             "LABEL chain=yes\n"}, "t=chain&nocache=1")
    assert status == 200
    iid = image_id_of(body)
    assert len(all_ids() - before_all) == 3  # one image per step
    assert top_ids() - before_top == {iid}  # only the final one without -a
    out = bbd.client().delete_json("/images/chain")
    assert sum(1 for d in out if "Deleted" in d) == 3
    assert all_ids() == before_all
    # The cache's rows for deleted images never hit.
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nENV chain=1\n"})
    assert b"Using cache" not in body


def test_from_pull_side_by_side(bbd, ref, registry):
    from registries import files_layer, push_image

    # An image of its own (no layer either daemon has): no RUN, so no busybox needed.
    push_image(registry, "test/pullsbs", "latest", [files_layer({"pullsbs": "unique"})])
    name = f"{registry.host}/test/pullsbs:latest"
    body = context_tar({"Dockerfile": f"FROM {name}\nENV pulled=1\n"})
    runs = []
    for host in (bbd.host, ref.host):
        status, _, out = post_build(host, body, "nocache=1")
        assert status == 200, out
        runs.append(messages(normalized(out)))

    def view(ms: list[dict[str, Any]]) -> list[Any]:
        # Progress bars and their counts vary with timing: keep the final states.
        keep = ("Pulling from", "Pull complete", "Digest:", "Status:", "Already exists")
        return [m if "stream" in m or "aux" in m else (m.get("status"), m.get("id"))
                for m in ms
                if "stream" in m or "aux" in m or str(m.get("status", "")).startswith(keep)]
    assert view(runs[0]) == view(runs[1])


def test_daemon_killed_mid_build_cleans_up_at_start(tmp_path, busybox_tar):
    import signal
    import time

    from conftest import Daemon, kill_containers_left, mounts_under, unmount_all

    d = Daemon(tmp_path / "d", "overlay")
    d.base.mkdir()
    try:
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        # The COPY unpacks the context (onto a tmpfs of its own) before the RUN.
        body = context_tar({"Dockerfile": "FROM busybox\nCOPY f /\nRUN echo started; sleep 60\n",
                            "f": "x"})
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(d.sock))
        try:
            s.sendall(b"POST /v1.41/build HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar"
                      + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            got = b""
            deadline = time.monotonic() + 30
            while b'"started\\n"' not in got and time.monotonic() < deadline:
                got += s.recv(65536)
            assert b'"started\\n"' in got
            assert d.proc is not None
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
        finally:
            s.close()
        assert any((d.root / "builder").iterdir())
        assert mounts_under(d.root / "builder")  # the context's tmpfs
        d.start()
        assert not mounts_under(d.root / "builder")
        assert d.client().get_json("/containers/json", {"all": 1}) == []
        assert not any((d.root / "builder").iterdir()) if (d.root / "builder").exists() else True
    finally:
        d.stop()
        left = kill_containers_left(d.base)
        leaked = mounts_under(d.base)
        unmount_all(d.base)
    assert not left and not leaked


def test_build_events(bbd):
    import time

    time.sleep(0.01)
    since = time.time()
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nRUN true\n"}, "nocache=1&t=evt")
    assert status == 200
    r = bbd.client().request("GET", "/events", {"since": f"{since:.3f}",
                                                 "until": f"{time.time() + 1:.3f}"})
    events = [json.loads(line) for line in r.read().splitlines() if line.strip()]
    seen = [(e["Type"], e["Action"]) for e in events]
    # dockerd 20.10: the RUN container's life, then the tag; no image event per step.
    assert seen == [("container", "create"), ("container", "attach"), ("container", "start"),
                    ("container", "die"), ("container", "detach"), ("container", "destroy"),
                    ("image", "tag")]
    assert events[-1]["Actor"]["Attributes"] == {"name": "evt:latest"}


def test_rebuild_with_inherited_healthcheck_is_all_cache(bbd):
    files = {"Dockerfile": "FROM busybox AS a\nHEALTHCHECK --retries=3 CMD true\n"
                           "FROM a\nHEALTHCHECK --interval=5s CMD false\nENV x=1\nLABEL y=2\n"}
    _, b1 = build(bbd, files)
    _, b2 = build(bbd, files)
    assert [m.get("stream") for m in messages(b2)].count(" ---> Using cache\n") == 4
    assert image_id_of(b1) == image_id_of(b2)
    hc = raw_config(bbd, image_id_of(b2))["Config"]["Healthcheck"]
    assert hc == {"Test": ["CMD-SHELL", "false"], "Interval": 5000000000, "Retries": 3}


def test_cache_from_a_loaded_image(bbd, tmp_path):
    """cachefrom matches by history and layers, without a parent chain (an
    image from `docker load`), as dockerd's ImageCache does."""
    script = "FROM busybox\nENV FROM_LOAD=1\nRUN echo a > /a\nLABEL l=1\nRUN echo b > /b\n"
    status, body = build(bbd, {"Dockerfile": script}, "t=cachesrc&nocache=1")
    assert status == 200
    iid = image_id_of(body)
    tar = tmp_path / "img.tar"
    tar.write_bytes(bbd.client().request("GET", "/images/cachesrc/get").read())
    bbd.client().delete_json("/images/cachesrc")
    bbd.cli("load", "-i", str(tar))
    status, body = build(bbd, {"Dockerfile": script},
                         "t=cachedst&cachefrom=%5B%22cachesrc%22%5D")
    streams = [m.get("stream") for m in messages(body)]
    assert streams.count(" ---> Using cache\n") == 4, streams
    assert image_id_of(body) == iid
    assert bbd.client().get_json("/images/cachedst/json")["Id"] == iid
    # Without cachefrom the loaded image's steps are not local build results.
    status, body = build(bbd, {"Dockerfile": script})
    assert b"Using cache" not in body


def test_run_writes_to_volumes_are_dropped(bbd):
    vols_before = {v["Name"] for v in bbd.client().get_json("/volumes")["Volumes"] or []}
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nVOLUME /data\n"
                                             "RUN echo x > /data/f && echo é€ && echo y > /kept\n"},
                         "t=vols&nocache=1")
    assert status == 200, body
    assert {"stream": "é€\n"} in messages(body)
    r = bbd.cli("run", "--rm", "vols", "sh", "-c", "ls /data; cat /kept")
    assert r.stdout == b"y\n"
    vols_after = {v["Name"] for v in bbd.client().get_json("/volumes")["Volumes"] or []}
    assert vols_after <= vols_before  # the RUN container's anonymous volume went with it


def test_build_on_each_storage_driver(any_daemon, busybox_tar):
    d = any_daemon
    d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    files = {"Dockerfile": "FROM busybox\nWORKDIR /w/x\nCOPY a b\nRUN rm /bin/true && "
                           "echo $(cat b) > c\nWORKDIR /w/x\nCOPY d /d\n", "a": "from-context",
             "d/" + "n" * 120 + "/f": b"x" * 300_000, "d/empty": ""}
    status, body = build(d, files, "t=drv")
    assert status == 200, body
    r = d.cli("run", "--rm", "drv", "sh", "-c", "pwd; cat c; ls /bin/true || echo gone")
    assert r.stdout.decode().split("\n")[:3] == ["/w/x", "from-context", "gone"]
    # busybox, the first WORKDIR's directories, COPY, RUN, COPY; WORKDIR /w/x
    # again changed nothing: no layer, as dockerd.
    assert len(raw_config(d, "drv")["RootFS"]["Layers"]) == 5
    # Layers are filled in place and tarred once: what `save` rebuilds from
    # them (tar-split) must still hash to the config's diff IDs.
    r = d.client().request("GET", "/images/drv/get")
    with tarfile.open(fileobj=io.BytesIO(r.read())) as t:
        manifest = json.load(t.extractfile("manifest.json"))[0]
        config = json.load(t.extractfile(manifest["Config"]))
        sums = ["sha256:" + hashlib.sha256(t.extractfile(p).read()).hexdigest()
                for p in manifest["Layers"]]
    r.close()
    assert sums == config["rootfs"]["diff_ids"]
    status, body = build(d, files, "t=drv")
    assert [m.get("stream") for m in messages(body)].count(" ---> Using cache\n") == 5
    d.client().delete_json("/images/drv")


def test_run_heredocs(bbd):
    """BuildKit's heredocs (dockerd 20.10 refuses them): an extension here."""
    df = ("FROM busybox\nRUN <<EOF\necho one > /one\necho two >> /one\nEOF\n"
          "RUN cat <<A > /two\nx $HOME\nA\n"
          "RUN <<-EOT sh\n\techo three > /three\n\tEOT\n"
          "RUN <<EOF\n#!/bin/sh -e\necho four > /four\nEOF\n")
    status, body = build(bbd, {"Dockerfile": df}, "t=heredocs&nocache=1")
    assert status == 200, body
    r = bbd.cli("run", "--rm", "heredocs", "cat", "/one", "/two", "/three", "/four")
    assert r.stdout == b"one\ntwo\nx /root\nthree\nfour\n"


def test_docker_compose_v1_build(bbd, tmp_path):
    import shutil
    import subprocess

    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(
        "FROM busybox\nARG GREETING=hi\nRUN echo $GREETING > /greeting\n")
    (tmp_path / "docker-compose.yml").write_text(
        'version: "3"\nservices:\n  app:\n    build:\n      context: app\n      args:\n'
        "        GREETING: hello-compose\n    image: composebuilt\n")
    r = subprocess.run([exe, "build"], cwd=tmp_path, env=bbd.env(), capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"Successfully tagged composebuilt:latest" in r.stdout
    out = bbd.cli("run", "--rm", "composebuilt", "cat", "/greeting").stdout
    assert out == b"hello-compose\n"


def test_env_keeps_the_place_of_a_variable_set_again(bbd):
    # openshift/imagebuilder's Dockerfile.env: dockerd replaces in place.
    status, body = build(bbd, {"Dockerfile": "FROM busybox\nENV a=1 b=2\nENV a=3 c=4\n"},
                         "t=envorder")
    assert status == 200
    assert raw_config(bbd, "envorder")["Config"]["Env"][1:] == ["a=3", "b=2", "c=4"]


def test_buildkit_extensions_run_mount_copy_chmod(bbd):
    """BuildKit's RUN --mount (cache, tmpfs, bind from the context, rw bind)
    and COPY --chmod/--link, which dockerd 20.10 refuses: extensions here.
    Nothing a mount brings stays in the layer; a cache mount outlives the
    build; a bound context path's content is in the step's cache key."""
    df = ("FROM busybox\n"
          "RUN --mount=type=cache,id=c1,target=/cache echo $(cat /cache/n 2>/dev/null)x > "
          "/cache/n; cat /cache/n\n"
          "RUN --mount=type=tmpfs,target=/t touch /t/a && ls /t\n"
          "RUN --mount=type=bind,source=sub,target=/src cat /src/f > /copied\n"
          "RUN --mount=type=bind,source=sub,target=/w,rw echo y > /w/f && cat /w/f\n"
          "COPY --chmod=700 --link sub/f /f700\n")
    files = {"Dockerfile": df, "sub/f": "from-context\n"}
    try:
        status, body = build(bbd, files, "t=mnt1&nocache=1")
        assert status == 200, body
        streams = [m.get("stream") for m in messages(body)]
        assert "x\n" in streams and "a\n" in streams and "y\n" in streams
        r = bbd.cli("run", "--rm", "mnt1", "sh", "-c",
                    "ls -d /cache /t /src /w 2>/dev/null; cat /copied; stat -c %a /f700")
        assert r.stdout.decode() == "from-context\n700\n"
        hist = bbd.client().get_json("/images/mnt1/history")
        assert hist[1]["CreatedBy"].startswith("--mount=type=bind,source=sub,target=/w,rw,content=")
        # the cache mount kept its file: a second uncached build reads it
        status, body = build(bbd, files, "t=mnt1&nocache=1")
        assert "xx\n" in [m.get("stream") for m in messages(body)]
        # all cached; then a change in the bound context path misses from there on
        status, body = build(bbd, files, "t=mnt1")
        assert [m.get("stream") for m in messages(body)].count(" ---> Using cache\n") == 5
        status, body = build(bbd, dict(files, **{"sub/f": "changed\n"}), "t=mnt1")
        assert [m.get("stream") for m in messages(body)].count(" ---> Using cache\n") == 2
        # secrets and ssh need BuildKit's session: refused clearly
        status, body = build(bbd, {"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=s "
                                                 "cat /run/secrets/s\n"})
        assert "needs BuildKit's session" in messages(body)[-1]["error"]
        # /build/prune empties the cache mounts
        r = bbd.client().request("POST", "/build/prune")
        r.close()
        status, body = build(bbd, files, "t=mnt1&nocache=1")
        assert "x\n" in [m.get("stream") for m in messages(body)]
    finally:
        bbd.client().request("DELETE", "/images/mnt1", check=False).close()
