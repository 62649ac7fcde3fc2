"""Build conformance, side by side with a reference dockerd (the classic
builder): a representative subset of openshift/imagebuilder's conformance
cases (contrib/conformance/run.py runs them all from the suite's repository),
written here as our own Dockerfiles and contexts so that the test needs no
checkout. Each is built by the docker CLI with DOCKER_BUILDKIT=0 on both
daemons and compared as the suite compares: outcome and error text, the image
config, the history (created_by, empty_layer) and every layer's file tree
(type, mode, owner, size, link target, xattrs, content hash; not mtimes)."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import DOCKER_CLI

_RUN = Path(__file__).resolve().parent.parent / "contrib" / "conformance" / "run.py"
_spec = importlib.util.spec_from_file_location("conformance_run", _RUN)
assert _spec is not None and _spec.loader is not None
conformance = importlib.util.module_from_spec(_spec)
sys.modules["conformance_run"] = conformance  # dataclasses look their module up
_spec.loader.exec_module(conformance)


def _archive(files: dict[str, bytes], compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


_ARCHIVED = {"archived/sub/a.txt": b"help, i've been archived\n", "archived/b.txt": b"b\n"}


def _odd_archive(kind: str) -> bytes:
    """buildah's add/parent-symlink (a link to `..`, then a file through it) and
    add/dir-not-dir (a file entry named "", then a file where the image has a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        def add(name: str, data: bytes = b"", type: bytes = tarfile.REGTYPE,
                link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = type, link, len(data)
            info.mode = 0o777 if type == tarfile.SYMTYPE else 0o644
            info.uid, info.mtime = 1001, 1_600_000_000
            t.addfile(info, io.BytesIO(data))
        if kind == "parent-symlink":
            add("symldir1", type=tarfile.SYMTYPE, link="..")
            add("symldir1/etc/myfile", b"hello\n")
        else:
            add("")
            add("app/content/file", b"some content\n")
            add("fileone", b"the first file\n")
    return buf.getvalue()


BUSYBOX = "FROM mirror.gcr.io/busybox\n"

# name -> (files of the context (str: a Dockerfile or text; bytes: as is), build args).
# After the suite's testdata (named in the comments), a few cases merged into one
# to keep the steps few: on dockerd every step is a container.
CASES: dict[str, tuple[dict[str, str | bytes], dict[str, str]]] = {
    # copychown/, copy/
    "copy chown": ({"Dockerfile": BUSYBOX
                    + "COPY --chown=lp:adm script /usr/bin/script.lp-adm\n"
                      "COPY --chown=12345 script script2 /var/created/directory/\n"
                      "WORKDIR /new-workdir/several/levels/deep\n"
                      "COPY --chown=3 script script2 ../no-such-subdirectory/\n",
                    "script": "#!/bin/sh\nexit 0", "script2": "#!/bin/sh\nexit 1"}, {}),
    # Dockerfile.edgecases, .healthcheck, workdir/Dockerfile.trailing
    "metadata": ({"Dockerfile": BUSYBOX + """MAINTAINER docker <docker@docker.io>
ONBUILD RUN ["echo", "test"]
# ENV \\
ENV SCUBA 1 DUBA 3
ENV name=value\\ value2 name2="a\\"b" name3='a\\"b'
CMD echo 'test' | wc -
EXPOSE 9000 5000/udp
HEALTHCHECK --start-period=8s --interval=5s --retries=3 \\
  CMD /app/check.sh --quiet
USER docker:root
WORKDIR /tmp/
"""}, {}),
    # Dockerfile.args, .run.args, workdir/
    "args and run": ({"Dockerfile": BUSYBOX + "ENV FOO=\"value\" TEST=$BAR\nARG BAR\n"
                                              "RUN [\"/bin/sh\", \"-c\", \"echo $1 $BAR > /x\", "
                                              "\"\", \"outer\"]\nUSER daemon\n"
                                              "WORKDIR /w/../v\nRUN pwd > /tmp/pwd\n"},
                     {"BAR": "first"}),
    # volume/, volumerun/, Dockerfile.volumeexists
    "volume": ({"Dockerfile": BUSYBOX + "ADD file /var/www/\nVOLUME /var/www\n"
                                        "ADD file2 /var/www/\n"
                                        "RUN touch /var/www/f3 && mkdir -p /srv/v && "
                                        "chown 1:1 /srv/v\n"
                                        "VOLUME /srv/v\nRUN touch /srv/v/emptyfile\n",
                "file": "file", "file2": "file2"}, {}),
    # dir/, wildcard/, add/
    "directory, wildcard, archives": (
        {"Dockerfile": BUSYBOX + "COPY . dir\nCOPY dir2/ test/\nENV DIR=/usr\n"
                                 "ADD dir2/*.b dir2/*.c $DIR/test/\n"
                                 "ADD archived.tar /archived-tar/\n"
                                 "ADD archived.tar.gz archived.txt /mixed/\n"
                                 "COPY archived.tar.xz /copied.tar.xz\n",
         "dir2/file.a": "a", "dir2/file.b": "b", "dir2/file.c": "c", "dir2/file2.b": "2b",
         "archived.tar": _archive(_ARCHIVED), "archived.tar.gz": _archive(_ARCHIVED, "gz"),
         "archived.tar.xz": _archive(_ARCHIVED, "xz"), "archived.txt": "plain\n"}, {}),
    # copyfrom/, Dockerfile.copyfrom_*
    "copyfrom": ({"Dockerfile": "FROM mirror.gcr.io/busybox AS base\n"
                                "RUN mkdir -p /a/b && touch /a/b/1 /a/b/2 && ln -s /a /l && "
                                "ln -s a /c && mkdir -m 711 /711 && touch /711/711.txt\n"
                                "FROM mirror.gcr.io/busybox\n"
                                "COPY --from=base /a/b/. /b/\n"
                                "COPY --from=base /l/b/1 /a/b/c\n"
                                "COPY --from=0 /c/b/1 /d/\n"
                                "COPY --from=base /711 /precreated/711\n"}, {}),
    # Dockerfile.unknown
    "unknown instruction": ({"Dockerfile": BUSYBOX + "HEALTH NONE\nUNRECOGNIZED\n"}, {}),
    # builtins/ (its RUN cp of a file the base lacks)
    "failing run": ({"Dockerfile": BUSYBOX + "RUN cp /etc/no-such.conf /x\n"}, {}),
    # buildah's add/parent-symlink, add/dir-not-dir and "shell test"
    "add parent symlink": ({"Dockerfile": "FROM scratch\nADD foobar.tar /testsubdir\n",
                            "foobar.tar": _odd_archive("parent-symlink")}, {}),
    "add dir not dir": ({"Dockerfile": BUSYBOX + "RUN mkdir fileone\nADD test.tar /\n",
                         "test.tar": _odd_archive("dir-not-dir")}, {}),
    "run missing shell": ({"Dockerfile": BUSYBOX + "RUN [\"/bin/bash\", \"-xc\", \"env\"]\n"}, {}),
}

# Cases where Dockyard differs from dockerd (bugs outside the builder, not fixed
# yet): name -> (why, a piece of the difference it makes).
KNOWN: dict[str, tuple[str, str]] = {}


@pytest.fixture(scope="module")
def engines(ref_dockerd, daemon, tmp_path_factory):
    """The reference dockerd and a Dockyard daemon, each with the stand-in base tagged
    as the names the cases use."""
    if DOCKER_CLI is None:
        pytest.skip("the docker CLI is not installed")
    work = tmp_path_factory.mktemp("conformance")
    tar = conformance.standin_tar(work / "standin")
    ref = conformance.Engine("dockerd", work / "dockerd", ref_dockerd.host, DOCKER_CLI)
    ours = conformance.Engine("dockyard", work / "dockyard", daemon.host, DOCKER_CLI)
    names = conformance.STANDINS[:2]
    for e in (ref, ours):
        e.base.mkdir()
        e.docker("import", "-c", 'CMD ["sh"]', str(tar), names[0])
        e.docker("tag", names[0], names[1])
    yield ref, ours
    for e in (ref, ours):
        e.docker("rmi", *names, check=False)


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(p, 0o644)
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.chmod(d, 0o755)
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_conformance_with_dockerd(engines, tmp_path, case):
    ref, ours = engines
    files, args = CASES[case]
    context = _write(tmp_path / "ctx", files)
    try:
        outcome, diffs = conformance.compare_builds(ref, ours, context, "Dockerfile", args,
                                                    "conformance-" + re.sub(r"\W+", "-", case))
    finally:
        shutil.rmtree(context, ignore_errors=True)
    if case in KNOWN:
        why, piece = KNOWN[case]
        assert diffs, f"{case} now matches: take it off KNOWN ({why})"
        assert any(piece in d for d in diffs), f"{case} ({why}):\n" + "\n".join(diffs)
        return
    assert diffs == [], f"{case} ({outcome}):\n" + "\n".join(diffs)
    # The failing cases must fail on both (not match vacuously by both building).
    assert (outcome == "built") == (case not in ("unknown instruction", "failing run",
                                                 "run missing shell"))
