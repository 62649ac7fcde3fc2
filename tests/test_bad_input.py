"""Bad input to the API gets dockerd's message as a 4xx and changes nothing
(issue 15's findings): values of the wrong JSON type or out of a Go type's
range at create, NaN, deep nesting, a bad signal or tail or size; and a
container that once answered 201 with such a body can't break listing.
The messages are dockerd 20.10's (which answers most of these with a 500)."""

from __future__ import annotations

import json

import pytest


def api(daemon, method: str, path: str, body=None, query=None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    r = daemon.client().request(method, path, query or {}, body=data, check=False,
                                headers={"Content-Type": "application/json"})
    out = r.read()
    r.close()
    return r.status, (json.loads(out) if out.strip().startswith(b"{") else out)


GO = "into Go struct field"
CREATE_CASES = [
    ({"Cmd": [1, 2]}, f"json: cannot unmarshal array {GO} ContainerConfigWrapper.Cmd of type string"),
    ({"Entrypoint": [True]},
     f"json: cannot unmarshal array {GO} ContainerConfigWrapper.Entrypoint of type string"),
    ({"Env": [1]}, f"json: cannot unmarshal number {GO} ContainerConfigWrapper.Env of type string"),
    ({"HostConfig": {"CpuShares": 2**70}},
     f"json: cannot unmarshal number {2**70} {GO} HostConfig.HostConfig.CpuShares of type int64"),
    ({"HostConfig": {"Memory": 2**64}},
     f"json: cannot unmarshal number {2**64} {GO} HostConfig.HostConfig.Memory of type int64"),
    ({"HostConfig": {"PidsLimit": 2**63}},
     f"json: cannot unmarshal number {2**63} {GO} HostConfig.HostConfig.PidsLimit of type int64"),
    ({"HostConfig": {"CpuQuota": 2**100}},
     f"json: cannot unmarshal number {2**100} {GO} HostConfig.HostConfig.CpuQuota of type int64"),
    ({"HostConfig": {"Memory": "12"}},
     f"json: cannot unmarshal string {GO} HostConfig.HostConfig.Memory of type int64"),
    ({"HostConfig": {"Memory": 1.5}},
     f"json: cannot unmarshal number 1.5 {GO} HostConfig.HostConfig.Memory of type int64"),
    ({"HostConfig": {"BlkioWeight": 70000}},
     f"json: cannot unmarshal number 70000 {GO} HostConfig.HostConfig.BlkioWeight of type uint16"),
    ({"HostConfig": {"Binds": ["::::"]}}, "invalid volume specification: '::::'"),
]


@pytest.mark.parametrize("extra,msg", CREATE_CASES)
def test_create_refuses(daemon, bb, extra, msg):
    before = api(daemon, "GET", "/containers/json", query={"all": 1})[1]
    st, body = api(daemon, "POST", "/containers/create",
                   {"Image": "busybox", "Cmd": ["true"], **extra})
    assert (st, body) == (400, {"message": msg})
    st, after = api(daemon, "GET", "/containers/json", query={"all": 1})
    assert st == 200 and after == before


@pytest.mark.parametrize("raw,msg", [
    (b'{"Image": "busybox", "HostConfig": {"Memory": NaN}}',
     "invalid character 'N' looking for beginning of value"),
    (b'{"Image": "busybox", "Memory": Infinity}',
     "invalid character 'I' looking for beginning of value"),
    (b'{"Image":' + b"[" * 100000 + b"]" * 100000 + b"}",
     "invalid character '[' exceeded max depth"),
])
def test_create_refuses_what_go_cannot_decode(daemon, bb, raw, msg):
    assert api(daemon, "POST", "/containers/create", raw=raw) == (400, {"message": msg})


def test_bad_signal_tail_and_size(daemon, bb):
    st, body = api(daemon, "POST", "/containers/create",
                   {"Image": "busybox", "Cmd": ["sh", "-c", "echo a; echo b; sleep 100"],
                    "Tty": False})
    cid = body["Id"]
    try:
        assert api(daemon, "POST", f"/containers/{cid}/start")[0] == 204
        assert api(daemon, "POST", f"/containers/{cid}/kill", query={"signal": "999"}) == (
            400, {"message": f"Cannot kill container: {cid}: The linux daemon does not support "
                            "signal 999"})
        assert api(daemon, "POST", f"/containers/{cid}/kill", query={"signal": "0"}) == (
            400, {"message": "Invalid signal: 0"})
        for _ in range(50):
            st, logs = api(daemon, "GET", f"/containers/{cid}/logs",
                           query={"stdout": 1, "tail": "abc"})
            if logs.endswith(b"b\n"):
                break
        assert st == 200 and logs == b"\x01\0\0\0\0\0\0\x02a\n\x01\0\0\0\0\0\0\x02b\n"  # all
        assert api(daemon, "POST", f"/containers/{cid}/resize", query={"h": "abc", "w": "1"}) \
            == (400, {"message": 'strconv.Atoi: parsing "abc": invalid syntax'})
        assert api(daemon, "POST", f"/containers/{cid}/resize", query={"h": "-1", "w": "10"})[0] \
            == 200
        # since/until that aren't Unix times: dockerd's words (it answers 500)
        for path in (f"/containers/{cid}/logs", "/events"):
            assert api(daemon, "GET", path, query={"stdout": 1, "since": "1.5x", "until": "2"}) \
                == (400, {"message": 'strconv.ParseInt: parsing "5x": invalid syntax'})
        assert api(daemon, "GET", "/containers/json")[0] == 200
    finally:
        api(daemon, "DELETE", f"/containers/{cid}", query={"force": 1})


def test_parallel_creates_without_names(daemon, bb):
    """Concurrent creates that draw the same generated name: each gets a
    container (the name is drawn again), none a 500; the same given name
    twice at once: one container and dockerd's conflict."""
    from concurrent.futures import ThreadPoolExecutor

    def create(name=None):
        return api(daemon, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]},
                   query={"name": name} if name else None)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: create(), range(200)))
        same = list(pool.map(lambda _: create("samename"), range(8)))
    try:
        assert all(st == 201 for st, _ in results), [r for r in results if r[0] != 201][:3]
        assert sorted(st for st, _ in same) == [201] + [409] * 7
        assert all("is already in use" in b["message"] for st, b in same if st == 409)
    finally:
        for st, b in results + same:
            if st == 201:
                api(daemon, "DELETE", f"/containers/{b['Id']}")


def _tar(entries: list[tuple[str, bytes, dict]]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, pax in entries:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.pax_headers = pax
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_put_archive_through_a_symlink_and_bad_pax(daemon, bb):
    """PUT archive: a tar directory over a symlink to / goes through it inside
    the container (as dockerd's extraction does), never out of it; a PAX size
    that isn't a number is refused, as Go's tar reader refuses it."""
    st, body = api(daemon, "POST", "/containers/create",
                   {"Image": "busybox", "Cmd": ["sleep", "100"]})
    cid = body["Id"]
    try:
        assert api(daemon, "POST", f"/containers/{cid}/start")[0] == 204
        daemon.cli("exec", cid, "ln", "-s", "/", "/lnk")
        daemon.cli("exec", cid, "ln", "-s", "/etc/passwd", "/file")
        r = daemon.client().request("PUT", f"/containers/{cid}/archive", {"path": "/"},
                                    body=_tar([("lnk/tmp/f", b"hi", {})]), check=False,
                                    headers={"Content-Type": "application/x-tar"})
        assert r.status == 200, r.read()
        r.close()
        assert daemon.cli("exec", cid, "cat", "/tmp/f").stdout == b"hi"
        st, body = api(daemon, "PUT", f"/containers/{cid}/archive", query={"path": "/"},
                       raw=_tar([("file/x", b"no", {})]))
        assert st == 400 and "cannot overwrite non-directory" in body["message"]
        st, body = api(daemon, "PUT", f"/containers/{cid}/archive", query={"path": "/tmp"},
                       raw=_tar([("neg", b"", {"size": "-5"})]))
        assert st == 400 and "invalid PAX size" in body["message"]
        assert b"neg" not in daemon.cli("exec", cid, "ls", "/tmp").stdout
    finally:
        api(daemon, "DELETE", f"/containers/{cid}", query={"force": 1})


def test_create_keys_match_in_any_case(daemon, bb):
    """Go decodes the create body's field names in any case: docker-py sends
    `CPURealtimePeriod` (its test_create_with_cpu_rt_options) and dockerd
    stores CpuRealtimePeriod; an exact spelling wins over another case."""
    st, body = api(daemon, "POST", "/containers/create",
                   {"image": "busybox", "cmd": ["true"],
                    "HostConfig": {"CPURealtimePeriod": 1000, "CPURealtimeRuntime": 500,
                                   "memory": 8 << 20, "Memory": 16 << 20}})
    assert st == 201, body
    try:
        st, info = api(daemon, "GET", f"/containers/{body['Id']}/json")
        hc = info["HostConfig"]
        assert (hc["CpuRealtimePeriod"], hc["CpuRealtimeRuntime"]) == (1000, 500)
        assert hc["Memory"] == 16 << 20 and "memory" not in hc
        assert info["Config"]["Cmd"] == ["true"] and info["Config"]["Image"] == "busybox"
    finally:
        api(daemon, "DELETE", f"/containers/{body['Id']}")


def test_huge_create_body_leaves_no_space_behind(daemon, bb):
    """A container created with a 40 MB label grows the database; its removal
    gives that space back to the filesystem (the adversarial run found 210 MB
    kept after a 100 MB body's container was gone)."""
    db = daemon.root / "dockyard.db"

    def size() -> int:
        return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())

    before = size()
    st, body = api(daemon, "POST", "/containers/create",
                   {"Image": "busybox", "Cmd": ["true"], "Labels": {"big": "x" * (40 << 20)}})
    assert st == 201, body
    assert size() > before + (40 << 20)
    assert api(daemon, "DELETE", f"/containers/{body['Id']}")[0] == 204
    assert size() < before + (20 << 20), (before, size())
