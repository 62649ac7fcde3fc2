"""The registry fixtures on their own (tests/registries.py): the real
docker-registry takes push_image uploads and gives them back byte for byte;
htpasswd, token and TLS registries accept and refuse what they should; the
bad registry misbehaves as told; skopeo and a real dockerd can pull."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import shutil
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from registries import (
    MEDIA_TYPES,
    BadRegistry,
    Registry,
    busybox_layer,
    files_layer,
    gzip_layer,
    parse_challenge,
    push_image,
    sample_layers,
)

SKOPEO = shutil.which("skopeo")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def names(tar: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return t.getnames()


def skopeo(*args: str) -> subprocess.CompletedProcess:
    if SKOPEO is None:
        pytest.skip("skopeo is not installed")
    return subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=120)


def test_layers_are_reproducible_and_carry_whiteouts():
    assert busybox_layer() == busybox_layer()
    assert gzip_layer(busybox_layer()).digest == gzip_layer(busybox_layer()).digest
    top = files_layer({"data/c": "c"}, whiteouts=["etc/motd"], opaque=["data"])
    assert top == files_layer({"data/c": "c"}, whiteouts=["etc/motd"], opaque=["data"])
    assert names(top) == ["data", "data/.wh..wh..opq", "data/c", "etc", "etc/.wh.motd"]
    assert "bin/sh" in names(busybox_layer())


@pytest.mark.parametrize("media,index", [("docker", False), ("oci", False), ("docker", True),
                                         ("oci", True)])
def test_push_image_round_trips(registry: Registry, media: str, index: bool):
    repo = f"test/roundtrip-{media}-{int(index)}"
    img = push_image(registry, repo, "v1", sample_layers(), media=media, index=index)
    assert img.ref == f"{registry.host}/{repo}:v1"
    c = registry.client()
    r = c.get_manifest(repo, "v1")
    assert r.status == 200
    assert r.headers["Docker-Content-Digest"] == img.manifest_digest == sha(r.body)
    top = r.json()
    assert top["mediaType"] == MEDIA_TYPES[media]["index" if index else "manifest"]
    if index:
        plats = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                 for m in top["manifests"]}
        assert set(plats) == {"linux/amd64", "linux/arm64"}
        r = c.get_manifest(repo, plats["linux/amd64"])
        assert sha(r.body) == plats["linux/amd64"] == img.platforms["linux/amd64"]
    manifest = r.json()
    assert manifest["config"]["digest"] == img.image_id
    config = json.loads(c.get_blob(repo, img.image_id))
    assert config["rootfs"]["diff_ids"] == img.diff_ids
    assert len(img.diff_ids) == len(manifest["layers"]) == 3
    for desc, diff_id in zip(manifest["layers"], img.diff_ids):
        blob = c.get_blob(repo, desc["digest"])
        assert sha(blob) == desc["digest"] and len(blob) == desc["size"]
        assert sha(gzip.decompress(blob)) == diff_id


def test_htpasswd_registry(registry_factory):
    reg = registry_factory(auth="htpasswd", users={"alice": "s3cret", "bob": "hunter2"})
    r = reg.client().request("GET", "/v2/")
    assert r.status == 401
    assert parse_challenge(r.headers["WWW-Authenticate"])[0] == "basic"
    assert reg.client(("alice", "wrong")).request("GET", "/v2/").status == 401
    assert reg.client(("mallory", "s3cret")).request("GET", "/v2/").status == 401
    assert reg.client(("bob", "hunter2")).request("GET", "/v2/").status == 200
    img = push_image(reg, "team/app", "v1", [busybox_layer()])  # as alice, the first user
    assert reg.client(("bob", "hunter2")).get_manifest("team/app", "v1").status == 200
    assert reg.client().get_manifest("team/app", "v1").status == 401
    with pytest.raises(AssertionError, match="401"):
        push_image(reg, "team/other", "v1", [busybox_layer()], auth=("alice", "nope"))
    assert img.manifest_digest


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_token_flow_blob_upload_by_hand(registry_factory):
    """The whole Docker token dance with nothing but http.client."""
    reg = registry_factory(auth="token", users={"alice": "s3cret"})
    conn = http.client.HTTPConnection(reg.host, timeout=30)

    def call(method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        r.read()
        return r

    r = call("POST", "/v2/team/app/blobs/uploads/")
    assert r.status == 401
    scheme, ch = parse_challenge(r.headers["WWW-Authenticate"])
    # distribution lists the actions in Go map order: compare them as a set
    kind, name, actions = ch["scope"].split(":")
    assert scheme == "bearer" and (kind, name) == ("repository", "team/app")
    assert sorted(actions.split(",")) == ["pull", "push"]
    realm = urllib.parse.urlsplit(ch["realm"])
    q = urllib.parse.urlencode({"service": ch["service"], "scope": ch["scope"]})
    tconn = http.client.HTTPConnection(realm.netloc, timeout=30)
    tconn.request("GET", f"{realm.path}?{q}", headers={"Authorization": basic("alice", "no")})
    bad = tconn.getresponse()
    bad.read()
    assert bad.status == 401
    tconn.request("GET", f"{realm.path}?{q}", headers={"Authorization": basic("alice", "s3cret")})
    doc = json.loads(tconn.getresponse().read())
    tconn.close()
    assert doc["expires_in"] == 300 and doc["token"] == doc["access_token"]
    head = json.loads(base64.urlsafe_b64decode(doc["token"].split(".")[0] + "=="))
    assert head["alg"] == "ES256" and head["x5c"]
    bearer = {"Authorization": f"Bearer {doc['token']}"}

    blob = b"hello, registry\n"
    r = call("POST", "/v2/team/app/blobs/uploads/", headers=bearer)
    assert r.status == 202, r.status
    loc = urllib.parse.urlsplit(r.headers["Location"])
    put = f"{loc.path}?{loc.query}&digest={urllib.parse.quote(sha(blob))}"
    r = call("PUT", put, blob, {**bearer, "Content-Type": "application/octet-stream"})
    assert r.status == 201
    assert call("HEAD", f"/v2/team/app/blobs/{sha(blob)}", headers=bearer).status == 200
    assert call("HEAD", f"/v2/team/app/blobs/{sha(blob)}").status == 401
    # A token for one repository opens no other.
    assert call("HEAD", f"/v2/team/other/blobs/{sha(blob)}", headers=bearer).status == 401
    conn.close()


def test_token_registry_grants(registry_factory):
    reg = registry_factory(auth="token", users={"alice": "s3cret", "reader": "r"},
                           read_only=["reader"])
    img = push_image(reg, "team/app", "v1", sample_layers(), media="oci")
    alice = reg.client(("alice", "s3cret"))
    assert alice.get_manifest("team/app", "v1").status == 200
    assert reg.client(("reader", "r")).get_manifest("team/app", img.manifest_digest).status == 200
    assert reg.client().get_manifest("team/app", "v1").status == 401  # no anonymous pull
    with pytest.raises(AssertionError, match="401"):
        push_image(reg, "team/app", "v2", [busybox_layer()], auth=("reader", "r"))
    with pytest.raises(PermissionError):
        reg.client(("alice", "wrong")).get_manifest("team/app", "v1")
    users = {q["user"] for q in reg.token_server.requests}
    assert {"alice", "reader", ""} <= users


def test_token_registry_anonymous_pull(registry_factory):
    reg = registry_factory(auth="token", users={"alice": "s3cret"}, anonymous_pull=True)
    push_image(reg, "library/app", "latest", [busybox_layer()])
    anon = reg.client()
    assert anon.get_manifest("library/app", "latest").status == 200
    with pytest.raises(AssertionError, match="401"):
        push_image(reg, "library/app", "v2", [busybox_layer()], auth=False)


def test_token_server_oauth_post(registry_factory):
    reg = registry_factory(auth="token", users={"alice": "s3cret"})
    realm = urllib.parse.urlsplit(reg.token_server.realm)

    def post(form: dict[str, str]) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(realm.netloc, timeout=30)
        conn.request("POST", realm.path, body=urllib.parse.urlencode(form),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        out = r.status, json.loads(r.read())
        conn.close()
        return out

    common = {"service": "dockyard-test-registry", "client_id": "test",
              "scope": "repository:team/app:pull"}
    assert post({**common, "grant_type": "password", "username": "alice",
                 "password": "no"})[0] == 401
    status, doc = post({**common, "grant_type": "password", "username": "alice",
                        "password": "s3cret"})
    assert status == 200 and doc["refresh_token"]
    status, again = post({**common, "grant_type": "refresh_token",
                          "refresh_token": doc["refresh_token"]})
    assert status == 200 and again["access_token"]


def test_tls_registry(registry_factory, tmp_path: Path):
    reg = registry_factory(tls=True)
    assert reg.url.startswith("https://") and reg.ca_pem and reg.ca_pem.exists()
    img = push_image(reg, "secure/app", "v1", [busybox_layer()])
    assert reg.client().get_manifest("secure/app", "v1").status == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        http.client.HTTPSConnection(reg.host, timeout=10,
                                    context=ssl.create_default_context()).request("GET", "/v2/")
    port = reg.host.split(":")[1]
    ctx = ssl.create_default_context(cafile=str(reg.ca_pem))
    conn = http.client.HTTPSConnection(f"localhost:{port}", timeout=10, context=ctx)
    conn.request("GET", "/v2/")
    assert conn.getresponse().status == 200
    conn.close()
    certs = reg.certs_dir(tmp_path / "certs.d")
    assert (certs / reg.host / "ca.crt").read_bytes() == reg.ca_pem.read_bytes()
    # A real client verifies it through the certs.d directory.
    r = skopeo("inspect", "--raw", "--cert-dir", str(certs / reg.host), f"docker://{img.ref}")
    assert r.returncode == 0, r.stderr
    assert sha(r.stdout.encode()) == img.manifest_digest
    r = skopeo("inspect", "--raw", f"docker://{img.ref}")
    assert r.returncode != 0 and "certificate" in r.stderr


def test_tls_with_htpasswd_and_skopeo_creds(registry_factory, tmp_path: Path):
    reg = registry_factory(tls=True, auth="htpasswd", users={"alice": "s3cret"})
    img = push_image(reg, "secure/app", "v1", [busybox_layer()])
    cert_dir = str(reg.certs_dir(tmp_path / "certs.d") / reg.host)
    r = skopeo("inspect", "--raw", "--cert-dir", cert_dir, "--creds", "alice:s3cret",
               f"docker://{img.ref}")
    assert r.returncode == 0, r.stderr
    r = skopeo("inspect", "--raw", "--cert-dir", cert_dir, "--creds", "alice:nope",
               f"docker://{img.ref}")
    assert r.returncode != 0


def test_skopeo_copies_from_token_registry(registry_factory, tmp_path: Path):
    reg = registry_factory(auth="token", users={"alice": "s3cret"})
    img = push_image(reg, "team/app", "v1", sample_layers())
    r = skopeo("copy", "--src-tls-verify=false", "--src-creds", "alice:s3cret",
               f"docker://{img.ref}", f"dir:{tmp_path / 'out'}")
    assert r.returncode == 0, r.stderr
    for layer in img.layers:
        assert (tmp_path / "out" / layer.digest.removeprefix("sha256:")).exists()


# --- the bad registry ---------------------------------------------------------


def get(bad: BadRegistry, path: str, headers: dict[str, str] | None = None
        ) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(bad.host, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_bad_registry_serves_cleanly_without_faults(bad_registry: BadRegistry, tmp_path: Path):
    img = bad_registry.serve("test/img", "latest", sample_layers(), index=True)
    r = skopeo("copy", "--src-tls-verify=false", f"docker://{img.ref}", f"oci:{tmp_path / 'o'}")
    assert r.returncode == 0, r.stderr
    status, body = get(bad_registry, f"/v2/test/img/blobs/{img.layers[0].digest}",
                       {"Range": "bytes=10-"})
    assert status == 206 and body == bad_registry.blobs[img.layers[0].digest][10:]
    assert get(bad_registry, "/v2/test/img/manifests/nope")[0] == 404
    assert json.loads(get(bad_registry, "/v2/test/img/tags/list")[1])["tags"] == ["latest"]
    assert json.loads(get(bad_registry, "/v2/_catalog")[1])["repositories"] == ["test/img"]


def test_bad_registry_v1_search(bad_registry: BadRegistry):
    bad_registry.serve("library/busybox", "latest", [busybox_layer()])
    bad_registry.serve("team/app", "v1", [busybox_layer()])
    bad_registry.search_index["library/busybox"].update(star_count=42, is_official=True)
    status, body = get(bad_registry, "/v1/search?q=busy&n=25")
    doc = json.loads(body)
    assert status == 200 and doc["num_results"] == 1
    assert doc["results"][0] == {"name": "library/busybox", "description":
                                 "library/busybox for tests", "star_count": 42,
                                 "is_official": True, "is_automated": False}


def test_bad_registry_faults(bad_registry: BadRegistry):
    layers = sample_layers()
    img = bad_registry.serve("t/wrong", "latest", layers, fault="wrong_digest", fault_layer=1)
    path = f"/v2/t/wrong/blobs/{img.layers[1].digest}"
    status, body = get(bad_registry, path)
    assert status == 200 and len(body) == img.layers[1].size and sha(body) != img.layers[1].digest
    assert sha(get(bad_registry, f"/v2/t/wrong/blobs/{img.layers[0].digest}")[1]) \
        == img.layers[0].digest

    img = bad_registry.serve("t/trunc", "latest", layers, fault="truncated", fault_layer=0)
    with pytest.raises(http.client.IncompleteRead):
        get(bad_registry, f"/v2/t/trunc/blobs/{img.layers[0].digest}")

    img = bad_registry.serve("t/500", "latest", layers, fault="status500", fault_layer="config")
    for _ in range(2):
        assert get(bad_registry, f"/v2/t/500/blobs/{img.image_id}")[0] == 500

    img = bad_registry.serve("t/flaky", "latest", layers, fault="flaky", fault_layer=2)
    path = f"/v2/t/flaky/blobs/{img.layers[2].digest}"
    assert get(bad_registry, path)[0] == 500
    status, body = get(bad_registry, path)
    assert status == 200 and sha(body) == img.layers[2].digest
    assert bad_registry.counts[f"GET {path}"] == 2

    img = bad_registry.serve("t/slow", "latest", layers, fault="slow", fault_layer=0, stall=1.0)
    t = time.monotonic()
    status, body = get(bad_registry, f"/v2/t/slow/blobs/{img.layers[0].digest}")
    assert time.monotonic() - t >= 1.0
    assert status == 200 and sha(body) == img.layers[0].digest


def test_bad_registry_stops_promptly_mid_stall():
    """Teardown must not wait out a long stall (tests use stall=60 to interrupt pulls)."""
    bad = BadRegistry().start()
    try:
        img = bad.serve("t/slow", "v1", [busybox_layer()], fault="slow", stall=60)
        got: list[BaseException | bytes] = []

        def fetch() -> None:
            try:
                got.append(get(bad, f"/v2/t/slow/blobs/{img.layers[0].digest}")[1])
            except Exception as e:  # noqa: BLE001 - the error is the point
                got.append(e)

        t = threading.Thread(target=fetch)
        t.start()
        deadline = time.monotonic() + 10
        while bad.blob_gets(img.layers[0].digest) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        bad.stop()
        assert time.monotonic() - started < 5
        t.join(10)
        assert got and isinstance(got[0], Exception)
    finally:
        bad.stop()


def test_bad_registry_wrong_digest_fails_skopeo(bad_registry: BadRegistry, tmp_path: Path):
    img = bad_registry.serve("t/img", "v1", sample_layers(), fault="wrong_digest", fault_layer=1)
    r = skopeo("copy", "--src-tls-verify=false", "--retry-times", "0", f"docker://{img.ref}",
               f"dir:{tmp_path / 'o'}")
    assert r.returncode != 0 and "digest" in r.stderr.lower()


def test_bad_registry_counts_shared_layers(bad_registry: BadRegistry, tmp_path: Path):
    base = busybox_layer()
    a = bad_registry.serve("t/a", "v1", [base, files_layer({"a": "a"})])
    b = bad_registry.serve("t/b", "v1", [base, files_layer({"b": "b"})])
    shared = a.layers[0].digest
    assert shared == b.layers[0].digest
    for img in (a, b):
        r = skopeo("copy", "--src-tls-verify=false", "--dest-shared-blob-dir",
                   str(tmp_path / "blobs"), f"docker://{img.ref}", f"oci:{tmp_path / 'o'}:x")
        assert r.returncode == 0, r.stderr
    assert bad_registry.blob_gets(shared) == 1  # skopeo found it in the shared blob dir
    assert bad_registry.blob_gets(b.layers[1].digest) == 1
    assert bad_registry.counts[f"GET /v2/t/a/blobs/{shared}"] == 1


# --- a real dockerd -----------------------------------------------------------


@pytest.mark.dockerd
def test_dockerd_pulls_from_registry(ref_dockerd, registry: Registry, busybox_image, sample_image,
                                     tmp_path: Path):
    ref_dockerd.docker("pull", f"{registry.host}/test/busybox:latest")
    ref_dockerd.docker("pull", sample_image.ref)
    try:
        info = json.loads(ref_dockerd.docker("inspect", sample_image.ref).stdout)[0]
        assert info["Id"] == sample_image.image_id
        assert f"{registry.host}/test/sample@{sample_image.manifest_digest}" in info["RepoDigests"]
        assert info["RootFS"]["Layers"] == sample_image.diff_ids
        # dockerd applies the whiteout and the opaque directory as the layers say.
        cid = ref_dockerd.docker("create", sample_image.ref).stdout.decode().strip()
        try:
            exported = ref_dockerd.docker("export", cid).stdout
        finally:
            ref_dockerd.docker("rm", cid)
        files = set(names(exported))
        assert {"etc/hello", "data/c", "bin/busybox"} <= files
        assert not files & {"etc/motd", "data/a", "data/b"}
    finally:
        ref_dockerd.docker("rmi", busybox_image.ref, sample_image.ref, check=False)


@pytest.mark.dockerd
def test_dockerd_pulls_multiarch_index(ref_dockerd, registry: Registry):
    img = push_image(registry, "test/multi", "latest", [busybox_layer()], media="oci",
                     index=True)
    ref_dockerd.docker("pull", img.ref)
    try:
        info = json.loads(ref_dockerd.docker("inspect", img.ref).stdout)[0]
        assert info["Id"] == img.image_id and info["Architecture"] == "amd64"
    finally:
        ref_dockerd.docker("rmi", img.ref, check=False)
