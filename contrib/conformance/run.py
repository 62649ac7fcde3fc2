"""Build conformance suites as a yardstick: openshift/imagebuilder's
(`dockerclient/conformance_test.go`) and buildah's (`tests/conformance`).
Each case's Dockerfile is built with a reference dockerd (the classic builder)
and with Dockyard, through the docker CLI with DOCKER_BUILDKIT=0, and the
results are compared as the suites do: the build's outcome (and error text),
the image config, the history and every layer's file tree.

The suites aren't vendored: give a git directory of the suite's repository (a
clone or the `fetch` tool's mirror); its testdata is exported at the pinned
commit and read as test input. buildah's case table is Go code: the runner
reads the names, contexts, Dockerfiles (inline ones too) and build args out of
it, and skips the cases that need its Go callbacks.

    python3 contrib/conformance/run.py --repo /work/.mirror/openshift+imagebuilder/repo
    python3 contrib/conformance/run.py --repo R -k copyfrom
    python3 contrib/conformance/run.py --suite buildah --repo /work/.mirror/containers+buildah/repo

Offline only: the images the Dockerfiles name are stood in for by one
busybox-static rootfs, tagged as those names, where busybox can do what the
Dockerfile asks; the other cases are listed as skipped with their reason.
Each engine runs in a network and mount namespace of its own. Results go to
bench/results/conformance.json (per case: outcome and differences).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

# suite -> (pinned commit, testdata directory)
SUITES = {
    # openshift/imagebuilder, 2026-05-07
    "imagebuilder": ("035359d69d4e679c502aa124341ae87d5bc73f56", "dockerclient/testdata"),
    # containers/buildah, 2026-06-01
    "buildah": ("5b1b18eebdc249bf445fe58b6f3d82fa91f35cf7", "tests/conformance/testdata"),
}
ROOT = Path(__file__).resolve().parents[2]

# The names the Dockerfiles use that one busybox-static rootfs stands in for.
STANDINS = ["mirror.gcr.io/busybox:latest", "mirror.gcr.io/alpine:latest",
            "mirror.gcr.io/debian:latest", "public.ecr.aws/docker/library/centos:7",
            "public.ecr.aws/centos:latest", "quay.io/libpod/centos:7", "busybox:latest"]

# A busybox image's accounts, plus the `lp` user CentOS has (copychown names it).
PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
lp:x:4:7:lp:/var/spool/lpd:/bin/false
sync:x:5:0:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
wheel:x:10:root
nogroup:x:65534:
"""


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    context: str | None  # a directory under testdata; None: the Dockerfile alone
    dockerfile: str = "Dockerfile"  # in the context, or under testdata when context is None
    args: dict[str, str] = dataclasses.field(default_factory=dict)
    skip: str = ""  # why it can't run here
    known: str = ""  # why Dockyard differs from dockerd by design
    output: tuple[str, ...] = ()  # regexes both builds' output must match
    contents: str | None = None  # the Dockerfile's text, written over `dockerfile`
    lone_as: str = "Dockerfile"  # a lone Dockerfile's name in its context ("": its own)


# TestConformanceInternal's cases (conformance_test.go), in its order and with its names.
SUITE_CASES = [
    Case("directory", "dir"),
    Case("copy to dir", "copy"),
    Case("copy chown", "copychown"),
    Case("copy chmod", "copychmod"),  # the classic builder refuses --chmod: both must
    Case("copy empty 1", "copyempty"),
    Case("copy empty 2", "copyempty", "Dockerfile2"),
    Case("copy dir", "copydir"),
    Case("copy to renamed file", "copyrename"),
    Case("copy subdirectory 1", "copyblahblub"),
    Case("copy subdirectory 2", "copyblahblub", "Dockerfile2"),
    Case("copy subdirectory 3", "copyblahblub", "Dockerfile3"),
    Case("directory with slash", "overlapdir", "Dockerfile.with_slash"),
    Case("directory without slash", "overlapdir", "Dockerfile.without_slash"),
    Case("environment", None, "Dockerfile.env"),
    Case("edgecases", None, "Dockerfile.edgecases"),
    Case("exposed_default", None, "Dockerfile.exposedefault"),
    Case("add", None, "Dockerfile.add", skip="ADD from https URLs: needs the network"),
    Case("add archives", "add"),
    Case("copy archives", "add", "Dockerfile.copy"),
    Case("add directories with archives", "add", "Dockerfile.addall"),
    Case("add directories with archives 2", "add", "Dockerfile.addslash"),
    Case("run with JSON", None, "Dockerfile.run.args",
         output=(r"(?m)(\[0m|^)inner outer$", r"(?m)(\[0m|^)first second$",
                 r"(?m)(\[0m|^)third fourth$", r"(?m)(\[0m|^)fifth sixth$")),
    Case("shell", None, "Dockerfile.shell", skip="SHELL [\"/bin/bash\"]: busybox has no bash"),
    Case("args", None, "Dockerfile.args", {"BAR": "first"}),
    Case("wildcard", "wildcard"),
    # "wildcard leading path" and "wildcard absolute path" are the same context
    # named another way (./testdata/wildcard, an absolute path): one case here.
    Case("volume", "volume"),
    Case("volumerun", "volumerun"),
    Case("novolume", None, "Dockerfile.novolume"),
    Case("novolumenorun", None, "Dockerfile.novolumenorun"),
    Case("noworkdir", None, "Dockerfile.noworkdir"),
    Case("volumeexists", None, "Dockerfile.volumeexists"),
    Case("multistage 1", ".", "Dockerfile.multistage",
         skip="COPY --from=mirror.gcr.io/golang:1.25 go/src: needs golang's tree"),
    Case("multistage reuse base", ".", "Dockerfile.reusebase"),
    Case("multistage 2", "multistage", skip="FROM mirror.gcr.io/golang:1.25: not offline"),
    Case("multistage copy", "copyfrom"),
    Case("multistageconfiginheritance", "multistage", "Dockerfile.env"),
    Case("nonroot-USER-before-WORKDIR-used", "user-workdir", "Dockerfile.used",
         skip="RUN adduser: Debian's busybox-static has no adduser applet"),
    Case("nonroot-USER-before-WORKDIR-notused", "user-workdir", "Dockerfile.notused",
         skip="RUN adduser: Debian's busybox-static has no adduser applet"),
    Case("healthcheck with defaults", None, "Dockerfile.healthcheck_defaults"),
    Case("healthcheck", None, "Dockerfile.healthcheck"),
    Case("workdir-with-trailing-path-separator", None, "workdir/Dockerfile.trailing"),
    Case("workdir-without-trailing-path-separator", None, "workdir/Dockerfile.notrailing"),
    Case("builtins", "builtins",
         args={"SOURCE": "source", "BUSYBOX": "mirror.gcr.io/busybox",
               "ALPINE": "mirror.gcr.io/alpine", "OWNERID": "0",
               "SECONDBASE": "localhost/no-such-image", "TARGETOS": "android",
               "TARGETARCH": "286", "TARGETVARIANT": "with-287"}),
    Case("multistage-builtin-args", None, "builtins/Dockerfile.margs"),
    Case("duplicate-stage", "multistage", "Dockerfile.dupstage"),
    Case("header-builtin", "header-builtin",
         skip="FROM registry.fedoraproject.org/fedora-minimal (two architectures): not offline"),
]

# The other Dockerfiles in testdata (imagebuilder's own builder tests use them):
# the same comparison, each as its own case.
EXTRA_CASES = [
    *[Case(f"copyfrom_{i}", None, f"Dockerfile.copyfrom_{i}") for i in range(1, 15)],
    Case("envsubst", None, "Dockerfile.envsubst"),
    Case("escape", None, "Dockerfile.escape"),
    Case("multiarg", None, "Dockerfile.multiarg"),
    Case("unset", None, "Dockerfile.unset"),
    Case("unset with FOO", None, "Dockerfile.unset", {"FOO": "x"}),
    Case("unknown", None, "Dockerfile.unknown"),
    Case("badhealthcheck", None, "Dockerfile.badhealthcheck"),
    Case("ignore", "ignore"),
    Case("singlefile", "singlefile"),
    Case("arg-scope", "multistage", "Dockerfile.arg-scope", {"SECRET": "secret"},
         skip="`FROM 0`: the classic builder has no stage index in FROM and reads 0 as an "
              "image-ID prefix: the base is whichever image's ID starts with 0"),
    Case("relative-copy_1", "multistage", "Dockerfile.relative-copy_1"),
    Case("relative-copy_2", "multistage", "Dockerfile.relative-copy_2"),
    Case("heading-redefine", "multistage", "Dockerfile.heading-redefine"),
    Case("heading-arg", "multistage", "Dockerfile.heading-arg",
         skip="FROM mirror.gcr.io/golang:1.25: not offline"),
    Case("ref", "multistage", "Dockerfile.ref",
         skip="COPY --from=mirror.gcr.io/nginx:latest: not offline"),
    Case("target", None, "Dockerfile.target", skip="FROM ubuntu:latest: not offline"),
    Case("envargconflict", None, "Dockerfile.envargconflict",
         skip="FROM ubuntu:18.04 and useradd: not offline"),
    Case("mount", None, "Dockerfile.mount",
         skip="needs imagebuilder's transient mounts (no Dockerfile equivalent)"),
]

CASES = SUITE_CASES + EXTRA_CASES

# Where Dockyard is known to differ (bugs outside the builder, not fixed yet):
# case name (either suite) -> why. tests/test_build_conformance.py pins each.
KNOWN = {
    "add-parent-symlink": "the archive extractor refuses a symlink climbing above the ADD "
                          "destination (`invalid symlink`); dockerd unpacks chrooted into it",
    "add-dir-not-dir": "the archive extractor refuses a non-directory root entry; dockerd "
                       "passes over it",
    "shell test": "the start error lacks runc 1.1's `runc create failed: unable to start "
                  "container process: ` prefix",
}

_GO_STR = r'"(?:[^"\\\n]|\\.)*"|`[^`]*`'


def _go_string(lit: str) -> str:
    if lit.startswith("`"):
        return lit[1:-1]
    return json.loads(lit.replace("\\'", "'"))


def buildah_cases(go: str) -> list[Case]:
    """The cases of buildah's `internalTestCases` table, read from its source."""
    table = go[go.index("var internalTestCases = []testCase{"):]
    cases = []
    for block in re.findall(r"^\t\{\n(.*?)^\t\},?$", table, re.M | re.S):
        def field(name: str) -> str:
            m = re.search(rf"^\t\t{name}:\s+({_GO_STR})", block, re.M)
            return _go_string(m.group(1)) if m else ""

        def flag(name: str) -> bool:
            return re.search(rf"^\t\t{name}:\s+true", block, re.M) is not None

        name, context, dockerfile = field("name"), field("contextDir"), field("dockerfile")
        contents = None
        m = re.search(r"^\t\tdockerfileContents:\s+strings\.Join\(\[\]string\{\n"
                      r"(.*?)^\t\t\}, \"\\n\"\)", block, re.M | re.S)
        if m:
            lines = []
            for item in re.finditer(rf"^\t\t\t(fmt\.Sprintf\()?({_GO_STR})", m.group(1), re.M):
                text = _go_string(item.group(2))
                # A Sprintf'd line is a comment with a number in it: a comment still.
                lines.append("#" if item.group(1) else text)
            contents = "\n".join(lines)
        elif re.search(r"^\t\tdockerfileContents:", block, re.M):
            contents = ""  # a form not read here
        args = {}
        m = re.search(r"^\t\tbuildArgs:\s+map\[string\]string\{(.*?)\}", block, re.M | re.S)
        if m:
            for k, v in re.findall(rf"({_GO_STR}):\s*({_GO_STR})", m.group(1)):
                args[_go_string(k)] = _go_string(v)
        skip = ""
        if flag("withoutDocker"):
            skip = "buildah-only feature (withoutDocker)"
        elif flag("dockerUseBuildKit") or "dockerBuilderVersion:" in block:
            skip = "compared with BuildKit by the suite (dockerUseBuildKit)"
        elif "tweakContextDir:" in block:
            skip = "its context is set up by Go code in the test (tweakContextDir)"
        elif "transientMounts:" in block:
            skip = "needs buildah's transient mounts"
        elif contents == "":
            skip = "inline Dockerfile in a form this runner doesn't read"
        if any(c.name == name for c in cases):  # a few names are used twice
            name = f"{name} #{sum(c.name.startswith(name) for c in cases) + 1}"
        cases.append(Case(name, context or None, dockerfile or "Dockerfile", args, skip,
                          KNOWN.get(name, ""), contents=contents, lone_as=""))
    return cases

CONFIG_FIELDS = ["Cmd", "Entrypoint", "Env", "ExposedPorts", "Labels", "User", "WorkingDir",
                 "Volumes", "StopSignal", "Healthcheck", "Shell", "OnBuild", "ArgsEscaped"]


# --- the stand-in image ----------------------------------------------------------------

def standin_tar(work: Path) -> Path:
    """A busybox-static rootfs shaped like the busybox image (accounts, /home,
    /usr, /var), with the few files other bases' Dockerfiles read."""
    bb = shutil.which("busybox") or "/bin/busybox"
    root = work / "rootfs"
    for d in ("bin", "dev", "etc", "home", "usr/bin", "usr/sbin", "usr/local/bin",
              "var/spool/mail", "var/www"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "root").mkdir(mode=0o700)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    shutil.copy(bb, root / "bin/busybox")
    for a in subprocess.run([bb, "--list"], capture_output=True, text=True).stdout.split():
        if a != "busybox" and not (root / "bin" / a).exists():
            (root / "bin" / a).symlink_to("busybox")
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    (root / "etc/nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    (root / "etc/os-release").write_text('NAME="busybox"\nID=busybox\n')
    out = work / "standin.tar"
    with tarfile.open(out, "w") as t:
        for p in sorted(root.rglob("*")):
            t.add(p, arcname=str(p.relative_to(root)), recursive=False)
    return out


# --- engines ---------------------------------------------------------------------------

class Engine:
    """A daemon on a private socket, driven through the docker CLI."""

    def __init__(self, kind: str, base: Path, host: str = "", cli: str = "docker") -> None:
        self.kind = kind
        self.cli = cli
        self.base = base  # its data, and the CLI's config
        self.sock = base / "engine.sock"
        self.host = host or f"unix://{self.sock}"  # given: a daemon started elsewhere
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=self.host, DOCKER_BUILDKIT="0",
                   DOCKER_CONFIG=str(self.base / "docker-config"))
        return env

    def docker(self, *args: str, cwd: Path | None = None, check: bool = True,
               timeout: int = 300) -> subprocess.CompletedProcess:
        r = subprocess.run([self.cli, *args], env=self.env(), cwd=cwd, capture_output=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{self.kind}: docker {' '.join(args)}: {r.stderr.decode()}")
        return r

    def start(self) -> None:
        if self.kind == "dockyard":
            cmd = [sys.executable, "-m", "dockyard", "daemon", "-H", self.host,
                   "-g", str(self.base / "root"), "-p", str(self.base / "pid"),
                   "--exec-root", str(self.base / "exec"), "--bridge", "none",
                   "--iptables=false"]
        else:
            cmd = ["dockerd", "--data-root", str(self.base / "root"),
                   "--exec-root", str(self.base / "exec"), "-H", self.host,
                   "--pidfile", str(self.base / "pid"), "--bridge", "none",
                   "--iptables=false", "--ip6tables=false",
                   "--containerd-namespace", f"conform-{os.getpid()}"]
        # Its own network and mount namespace: nothing reaches the host's.
        inner = "ip link set lo up && mount -t tmpfs tmpfs /run/netns 2>/dev/null; exec " + \
            " ".join(f"'{c}'" for c in cmd)
        env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
        self.proc = subprocess.Popen(
            ["unshare", "-n", "-m", "--propagation", "private", "sh", "-c", inner],
            stdout=open(self.base / "engine.log", "wb"), stderr=subprocess.STDOUT,
            env=env, start_new_session=True)
        for _ in range(600):
            if self.proc.poll() is not None:
                break
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise SystemExit(f"{self.kind} did not start: see {self.base / 'engine.log'}")

    def stop(self) -> None:
        if self.proc is None:
            return
        ids = self.docker("ps", "-aq", check=False).stdout.decode().split()
        if ids:
            self.docker("rm", "-f", "-v", *ids, check=False)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        subprocess.run(["umount", "-R", "-l", str(self.base)], capture_output=True)


# --- one build and what it made ---------------------------------------------------------

_ID64 = re.compile(r"[0-9a-f]{64}")
_ID12 = re.compile(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])")


def _errors(stderr: bytes) -> str:
    """The CLI's error text, without its legacy-builder notice; IDs normalised."""
    lines: list[str] = []
    notice = False
    for ln in stderr.decode(errors="replace").splitlines():
        # The notice's continuation lines are indented under "DEPRECATED:".
        notice = ln.startswith("DEPRECATED:") or (notice and ln.startswith(" "))
        if ln.strip() and not notice:
            lines.append(ln)
    return _ID12.sub("@id@", _ID64.sub("@ID@", "\n".join(lines)))


def build(engine: Engine, context: Path, dockerfile: str, args: dict[str, str],
          tag: str) -> dict[str, Any]:
    cmd = ["build", "--no-cache", "--force-rm", "-t", tag, "-f", dockerfile]
    for k, v in sorted(args.items()):
        cmd += ["--build-arg", f"{k}={v}"]
    r = engine.docker(*cmd, ".", cwd=context, check=False)
    return {"ok": r.returncode == 0, "error": "" if r.returncode == 0 else _errors(r.stderr),
            "output": r.stdout.decode(errors="replace")}


def layer_tree(data: bytes) -> dict[str, tuple]:
    """Each entry of a layer tar: type, mode, owner, size, link target, xattrs, content hash."""
    tree: dict[str, tuple] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t:
            name = m.name.removeprefix("./").rstrip("/") or "."
            digest = ""
            if m.isreg():
                f = t.extractfile(m)
                digest = hashlib.sha256(f.read() if f else b"").hexdigest()[:16]
            xattrs = tuple(sorted((k, v) for k, v in m.pax_headers.items()
                                  if k.startswith("SCHILY.xattr.")))
            # Permission bits only: dockerd's tars also carry Go's file-type bits in
            # the mode field (040755 for a directory); the type is compared apart.
            tree[name] = (m.type.decode(), oct(m.mode & 0o7777), m.uid, m.gid,
                          m.size if m.isreg() else 0, m.linkname,
                          (m.devmajor, m.devminor) if m.ischr() or m.isblk() else (),
                          xattrs, digest)
    return tree


def image_view(engine: Engine, tag: str) -> dict[str, Any]:
    """The saved image: config fields, history and every layer's tree."""
    r = subprocess.run([engine.cli, "save", tag], env=engine.env(), capture_output=True,
                       check=True, timeout=300)
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        def read(name: str) -> bytes:
            f = t.extractfile(name)
            assert f is not None, name
            return f.read()
        manifest = json.loads(read("manifest.json"))[0]
        cfg = json.loads(read(manifest["Config"]))
        layers = [layer_tree(read(p)) for p in manifest["Layers"]]
    c = cfg.get("config") or {}
    conf = {k: c.get(k) for k in CONFIG_FIELDS}
    # The suite's normalisation: an empty Labels/OnBuild is the same as none.
    for k in ("Labels", "OnBuild"):
        conf[k] = conf[k] or None
    return {"config": conf, "author": cfg.get("author", ""), "os": cfg.get("os"),
            "architecture": cfg.get("architecture"),
            "history": [(h.get("created_by", ""), bool(h.get("empty_layer")))
                        for h in cfg.get("history", [])],
            "layers": layers}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between dockerd's image (a) and Dockyard's (b), one line a point."""
    out = []
    for k in ("author", "os", "architecture"):
        if a[k] != b[k]:
            out.append(f"{k}: {a[k]!r} != {b[k]!r}")
    for k in CONFIG_FIELDS:
        if a["config"][k] != b["config"][k]:
            out.append(f"config.{k}: {a['config'][k]!r} != {b['config'][k]!r}")
    if a["history"] != b["history"]:
        out.append(f"history: {a['history']!r} != {b['history']!r}")
    la, lb = a["layers"], b["layers"]
    if len(la) != len(lb):
        out.append(f"layers: {len(la)} != {len(lb)}")
    for i, (ta, tb) in enumerate(zip(la, lb)):
        for name in sorted(set(ta) | set(tb)):
            if ta.get(name) != tb.get(name):
                out.append(f"layer {i} {name}: {ta.get(name)} != {tb.get(name)}")
    return out


def compare_builds(ref: Engine, ours: Engine, context: Path, dockerfile: str,
                   args: dict[str, str], tag: str, output: tuple[str, ...] = ()
                   ) -> tuple[str, list[str]]:
    """Build on both engines: dockerd's outcome ("built" or its error) and the
    differences (none: they match)."""
    results = {}
    for e in (ref, ours):
        results[e.kind] = build(e, context, dockerfile, args, tag)
    a, b = results[ref.kind], results[ours.kind]
    diffs = []
    try:
        if a["ok"] != b["ok"]:
            diffs.append(f"outcome: dockerd {'built' if a['ok'] else 'failed: ' + a['error']}, "
                         f"dockyard {'built' if b['ok'] else 'failed: ' + b['error']}")
        elif not a["ok"]:
            if a["error"] != b["error"]:
                diffs.append(f"error: {a['error']!r} != {b['error']!r}")
        else:
            diffs += differences(image_view(ref, tag), image_view(ours, tag))
        for rx in output:
            for kind, r in results.items():
                if r["ok"] and not re.search(rx, r["output"]):
                    diffs.append(f"{kind}'s output lacks {rx}")
    finally:
        for e in (ref, ours):
            e.docker("rmi", "-f", tag, check=False)
            e.docker("image", "prune", "-f", check=False)
    return ("built" if a["ok"] else (a["error"].splitlines() or ["failed"])[-1]), diffs


def case_context(testdata: Path, case: Case, work: Path) -> tuple[Path, str]:
    """The directory to send and the Dockerfile's name in it, as the suite lays
    them out: a lone Dockerfile goes into an empty directory (imagebuilder names
    it `Dockerfile`), an inline one is written into a copy of the context."""
    if case.context is not None and case.contents is None:
        return testdata / case.context, case.dockerfile
    d = work / "ctx" / re.sub(r"\W+", "-", case.name)
    if d.exists():
        shutil.rmtree(d)
    if case.context is not None:
        shutil.copytree(testdata / case.context, d, symlinks=True)
    else:
        d.mkdir(parents=True)
    name = case.dockerfile
    if case.context is None and (testdata / case.dockerfile).is_file():
        name = case.lone_as or Path(case.dockerfile).name
        shutil.copy(testdata / case.dockerfile, d / name)
    if case.contents is not None:
        name = Path(case.dockerfile).name if case.context is None else case.dockerfile
        (d / name).write_text(case.contents)
    return d, name


def bases(dockerfile: str) -> list[str]:
    """The images a Dockerfile names (FROM, COPY --from) that aren't its stages."""
    stages: set[str] = set()
    out = []
    text = re.sub(r"\\\n", " ", dockerfile)
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        op = words[0].upper()
        if op == "FROM":
            rest = [w for w in words[1:] if not w.startswith("--")]
            if rest and rest[0].lower() not in stages:
                out.append(rest[0])
            if len(rest) >= 3 and rest[1].upper() == "AS":
                stages.add(rest[2].lower())
        elif op in ("COPY", "ADD"):
            for w in words[1:]:
                if w.startswith("--from="):
                    ref = w.split("=", 1)[1]
                    if ref.lower() not in stages and not ref.isdigit():
                        out.append(ref)
    return out


def offline_skip(dockerfile: str) -> str:
    """Why a Dockerfile can't build offline here ("": it can)."""
    if re.search(r"(?im)^\s*ADD\s.*\bhttps?://", dockerfile):
        return "ADD from a URL: needs the network"
    known = {n.removesuffix(":latest") for n in STANDINS} | set(STANDINS) | {"scratch"}
    for b in bases(dockerfile):
        if "$" not in b and b not in known:
            return f"needs {b}: not offline"
    return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=sorted(SUITES), default="imagebuilder")
    ap.add_argument("--repo", required=True, help="a git directory of the suite's repository")
    ap.add_argument("--commit", default=None, help="default: the pinned one")
    ap.add_argument("-k", default=None, help="only the cases whose name contains this")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="conform-", dir="/var/tmp"))
    engines: list[Engine] = []
    table: dict[str, dict[str, Any]] = {}
    try:
        commit, suite = SUITES[a.suite]
        commit = a.commit or commit
        archive = subprocess.run(["git", "--git-dir", a.repo, "archive", commit, suite],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        testdata = work / suite
        if a.suite == "buildah":
            go = subprocess.run(["git", "--git-dir", a.repo, "show",
                                 f"{commit}:tests/conformance/conformance_test.go"],
                                capture_output=True, check=True, text=True).stdout
            cases = buildah_cases(go)
        else:
            cases = CASES
        tar = standin_tar(work / "standin")
        for kind in ("dockerd", "dockyard"):
            (work / kind).mkdir()
            e = Engine(kind, work / kind)
            engines.append(e)
            e.start()
            e.docker("import", "-c", 'CMD ["sh"]', str(tar), STANDINS[0])
            for name in STANDINS[1:]:
                e.docker("tag", STANDINS[0], name)
        ref, ours = engines
        for i, case in enumerate(cases):
            if a.k and a.k not in case.name:
                continue
            context, dockerfile = (None, "") if case.skip else \
                case_context(testdata, case, work)
            skip = case.skip
            if not skip and context is not None:
                df = context / dockerfile
                skip = offline_skip(df.read_text()) if df.is_file() else ""
            if skip:
                table[case.name] = {"result": "skipped", "why": skip}
            else:
                assert context is not None
                outcome, diffs = compare_builds(ref, ours, context, dockerfile, case.args,
                                                f"conformance-{i}", case.output)
                result = "match" if not diffs else "known" if case.known else "differs"
                table[case.name] = {"result": result, "outcome": outcome,
                                    "differences": diffs, "why": case.known}
            row = table[case.name]
            print(f"{case.name:42} {row['result']:8} {row.get('outcome', '')[:70]:8} "
                  f"{row['why']}", flush=True)
            for d in row.get("differences", [])[:20]:
                print(f"{'':45}{d}", flush=True)
    finally:
        for e in engines:
            e.stop()
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "conformance.json").write_text(json.dumps(table, indent=1))
    ran = [n for n, r in table.items() if r["result"] != "skipped"]
    matched = [n for n in ran if table[n]["result"] == "match"]
    known = [n for n in ran if table[n]["result"] == "known"]
    print(f"\n{len(matched)} of {len(ran)} match ({len(known)} known differences, "
          f"{len(table) - len(ran)} skipped)")


if __name__ == "__main__":
    main()
