"""The daemon's pidfile: held with a lock so that a second daemon refuses to
start, while a stale file (its process gone) is simply taken over."""

from __future__ import annotations

import fcntl
import os


class PidFileBusy(SystemExit):
    pass


class PidFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise PidFileBusy(f"pid file found, ensure dockyard is not running or delete "
                              f"{self.path} (held by process {other or '?'})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = -1
