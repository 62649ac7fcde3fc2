"""A container's processes seen from the daemon: signalling them (never pid 0),
signal names as Docker takes them, liveness, and the error a failed start
raises. Shared by the lifecycle, reconcile and exec modules."""

from __future__ import annotations

import os
import signal as signals

from ..errors import DockyardError, InvalidParameter


class StartError(DockyardError):
    """The container's process could not be started (Docker answers 400/500 with
    the runtime's message; the CLI maps it to 126/127/125)."""

    status = 400

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def send_signal(pid: int, sig: int) -> None:
    """Signal a container's process. A missing pid (0) must never become
    kill(0, ...), which would hit the daemon's own process group."""
    if pid <= 1:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def signal_number(sig: str | int | None, default: int = signals.SIGKILL) -> int:
    if sig in (None, ""):
        return default
    s = str(sig).upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    try:
        return int(getattr(signals, s))
    except AttributeError:
        raise InvalidParameter(f"Invalid signal: {sig}") from None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
