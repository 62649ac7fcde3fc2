"""The engine on a pure cgroup v2 host, for real: boots Debian's kernel in a
qemu VM whose only cgroup mount is cgroup2 at /sys/fs/cgroup (all controllers
on), with the host's root filesystem, Python and this checkout shared
read-only over 9p, and runs tests/test_cgroup_v2_vm_inner.py there with the
engine from this checkout. Fails with the inner output when the inner run
fails. Also tests/test_cgroup_v2_vm_rootless_inner.py (rootless Dockyard in
a cgroup delegated to a user). The kernel and initramfs are cached in /var/cache/dockyard-test/vm
(tests/vm/vmkit.py; .ci/setup fetches them). KVM when it works for an ordinary
guest, else TCG (about 1.5-2.5 minutes on two cores)."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import re
import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INNER = "tests/test_cgroup_v2_vm_inner.py"
#: rootless in a delegated cgroup (its own module: no root daemon fixture)
INNER_ROOTLESS = "tests/test_cgroup_v2_vm_rootless_inner.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _vmkit():
    if "dockyard_vmkit" in sys.modules:
        return sys.modules["dockyard_vmkit"]
    spec = importlib.util.spec_from_file_location("dockyard_vmkit",
                                                  REPO / "tests" / "vm" / "vmkit.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dockyard_vmkit"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _job() -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DOCKYARD_VM_INNER": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": "/vmscratch",
        # Plugins installed for other tests (hypothesis, schemathesis, anyio)
        # cost ~30 s of imports under TCG: load only pytest-timeout.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        # the engine under test is this checkout's, whatever the editable install points to
        "PYTHONPATH": str(REPO / "python"),
    }
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    pytest_cmd = shlex.join([
        sys.executable, "-m", "pytest", "-p", "pytest_timeout", "-p", "no:cacheprovider",
        "-q", "-rA", "--durations=8",
        "-o", "timeout=150", "--basetemp=/vmscratch/inner", "--junitxml=/results/junit.xml",
        INNER, INNER_ROOTLESS])
    return (f"{exports}cd {shlex.quote(str(REPO))}\n"
            "echo \"kernel $(uname -r); cgroup mounts: $(grep -c cgroup /proc/self/mountinfo)\"\n"
            f"{pytest_cmd}\n")


_background: concurrent.futures.Future | None = None


def start_in_background() -> None:
    """Boot the VM now, on a thread, while the rest of the suite runs (conftest
    calls this at collection and moves the test last): under TCG the VM needs
    one core for a minute or two, and most of the suite waits on I/O."""
    global _background
    if _background is None:
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cgroup-v2-vm")
        _background = pool.submit(_vmkit().run, _job(), timeout=600, keep=["junit.xml"])
        pool.shutdown(wait=False)


@pytest.mark.timeout(900)
def test_pure_cgroup_v2_in_a_vm(capsys):
    vmkit = _vmkit()
    start_in_background()
    assert _background is not None
    try:
        r = _background.result()
    except vmkit.Unavailable as e:
        pytest.skip(f"no VM here: {e} (.ci/setup installs qemu-system-x86 and fetches the kernel)")
    summary = (r.output.strip().splitlines() or [""])[-1]
    with capsys.disabled():
        print(f"\n[cgroup v2 VM] {r.describe()}: {summary}")
    detail = (f"\n--- VM: {r.describe()}\n--- inner output:\n{r.output[-20000:]}"
              f"\n--- console (tail):\n{r.console[-4000:]}")
    assert r.rc is not None, "the inner run never finished" + detail
    assert r.rc == 0, "the inner tests failed" + detail
    junit = r.files.get("junit.xml")
    assert junit, "no junit report from the VM" + detail
    suite = ET.fromstring(junit)
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    # xfails count as skipped in junit; real skips would mean the VM isn't what we think
    real_skips = [tc.get("name") for tc in suite.iter("testcase")
                  if tc.find("skipped") is not None
                  and tc.find("skipped").get("type") != "pytest.xfail"]
    assert counts["tests"] >= 10 and counts["failures"] == counts["errors"] == 0, \
        f"{counts}" + detail
    assert not real_skips, f"inner tests skipped: {real_skips}" + detail
    assert re.search(r"\d+ passed", r.output), detail
