"""The client-side build context without a daemon: Go's tar header rules
(USTAR, prefix splitting, PAX when needed), .dockerignore walking as the
20.10 CLI does it, the Dockerfile injection, and the query of the flags.
Side-by-side checks against the docker CLI are in test_build_cli.py."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from dockyard.cli import build, buildcontext as bc


def read(chunks) -> list[tarfile.TarInfo]:
    data = b"".join(chunks)
    assert len(data) % 512 == 0 and data.endswith(bytes(1024))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return [(m, t.extractfile(m).read() if m.isreg() else b"") for m in t]


def test_header_formats():
    cases = {
        b"short": "ustar",
        b"d" * 60 + b"/" + b"e" * 60: "ustar",     # split into prefix/name
        b"f" * 120: "pax",                          # no slash to split at
        "é".encode(): "pax",                        # not ASCII
    }
    for name, kind in cases.items():
        h = bc.Header(name=name, mode=0o100644, size=3, mtime=1_600_000_000)
        blocks = bc.encode_header(h)
        assert (len(blocks) > 512) == (kind == "pax"), name
        (m, data), = read([*bc.entry(h, [b"abc"]), bc.TRAILER])
        assert m.name.encode() == name and m.mode == 0o100644 and data == b"abc"
    big = bc.Header(name=b"big-uid", mode=0o100600, uid=1 << 22, uname=b"u" * 40)
    (m, _), = read([bc.encode_header(big), bc.TRAILER])
    assert m.uid == 1 << 22 and m.uname == "u" * 40
    assert m.pax_headers["uid"] == str(1 << 22)


def test_directory_tar_follows_dockerignore(tmp_path: Path):
    ctx = tmp_path / "ctx"
    (ctx / "keep" / "deep").mkdir(parents=True)
    (ctx / "skip").mkdir()
    (ctx / "skip" / "back").write_text("b")
    (ctx / "skip" / "gone").write_text("g")
    (ctx / "keep" / "deep" / "f").write_text("f")
    (ctx / "x.log").write_text("l")
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / ".dockerignore").write_text("skip\n!skip/back\n*.log\nDockerfile\n.dockerignore\n")
    os.link(ctx / "keep" / "deep" / "f", ctx / "hard")
    names = [(m.name, m.type) for m, _ in
             read(bc.directory_context(str(ctx), "Dockerfile", False))]
    assert names == [(".dockerignore", b"0"), ("Dockerfile", b"0"), ("hard", b"0"),
                     ("keep", b"5"), ("keep/deep", b"5"), ("keep/deep/f", b"1"),
                     ("skip/back", b"0")]


def test_dockerfile_added_under_a_random_name(tmp_path: Path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a").write_text("a")
    tar, name = bc.add_dockerfile(bc.directory_context(str(ctx), "../Dockerfile", False),
                                  b"FROM scratch\n")
    got = {m.name: (oct(m.mode), data) for m, data in read(tar)}
    assert name.startswith(".dockerfile.") and len(name) == len(".dockerfile.") + 20
    assert got[name] == ("0o600", b"FROM scratch\n")
    assert got[".dockerignore"] == ("0o600", f".dockerignore\n{name}\n".encode())
    assert got["a"][1] == b"a"


def test_flags_to_query():
    o, args, _ = build.parse_args(["-t", "a", "--tag=b:1", "-qt", "c", "--build-arg", "K",
                                   "--label", "l", "--rm=false", "--ulimit", "nofile=1:2",
                                   "--cache-from", "x,y", "ctx"])
    assert args == ["ctx"] and o["quiet"] and o["tag"] == ["a", "b:1", "c"]
    q = build.build_query(o, "Dockerfile", "unix:///x")
    assert list(q) == sorted(q)
    assert q["rm"] == "0" and q["q"] == "1" and q["cachefrom"] == '["x","y"]'
    assert q["labels"] == '{"l":""}' and q["ulimits"] == '[{"Name":"nofile","Hard":2,"Soft":1}]'
    assert build.go_json({"a": "<&>"}) == '{"a":"\\u003c\\u0026\\u003e"}'
