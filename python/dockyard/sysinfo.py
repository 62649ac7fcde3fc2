"""Facts about the host for `/version` and `/info`."""

from __future__ import annotations

import os
import platform
import socket
from functools import lru_cache


@lru_cache(maxsize=1)
def os_release() -> tuple[str, str]:
    name, version = "Linux", ""
    try:
        data = dict(
            line.split("=", 1) for line in open("/etc/os-release").read().splitlines()
            if "=" in line
        )
        name = data.get("PRETTY_NAME", name).strip('"')
        version = data.get("VERSION_ID", "").strip('"')
    except OSError:
        pass
    return name, version


def mem_total() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def swap_limit_supported() -> bool:
    if cgroup_version() == "2":
        return True
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


def hostname() -> str:
    return socket.gethostname()


def kernel() -> str:
    return platform.release()


def arch() -> str:
    return platform.machine()
