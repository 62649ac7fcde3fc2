"""The raw streams of attach, exec and logs: Docker's multiplexed frames
(8-byte header: stream type, 0, 0, 0, big-endian u32 size, then the payload),
raw TTY bytes, stdin pumping with detach keys, the local terminal's raw mode,
TTY resizes (also on SIGWINCH) and signal forwarding.

Standard library only, and nothing heavy: `dockyard run` uses it on its fast
path, without Typer.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any, Callable

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


class DetachError(Exception):
    """The user typed the detach sequence."""


def config_detach_keys() -> str | None:
    """`detachKeys` of the client's config file, as docker reads it: Dockyard's
    own (`$DOCKYARD_CONFIG` or ~/.dockyard) first, then docker's
    (`$DOCKER_CONFIG` or ~/.docker); `--detach-keys` overrides both."""
    from . import fastjson as json  # the run path loads no json/re/enum

    for env, default in (("DOCKYARD_CONFIG", "~/.dockyard"), ("DOCKER_CONFIG", "~/.docker")):
        path = os.path.join(os.environ.get(env) or os.path.expanduser(default), "config.json")
        try:
            with open(path, "rb") as f:
                keys = json.loads(f.read()).get("detachKeys")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(keys, str) and keys:
            return keys
    return None


def detach_keys_for(flag: str | None) -> str | None:
    """The detach sequence a command uses (and sends to the daemon)."""
    return flag or config_detach_keys()


def parse_detach_keys(spec: str | None) -> bytes:
    """docker's term.ToBytes: comma-separated single characters or ctrl-<key>."""
    out = bytearray()
    for key in (spec or DEFAULT_DETACH_KEYS).split(","):
        k = key.strip()
        if len(k) > 1 and k.lower().startswith("ctrl-") and len(k) == 6:
            c = k[5].lower()
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(c)
            if code is None:
                if not ("a" <= c <= "z"):
                    raise ValueError(f"Unknown character: '{key}'")
                code = ord(c) - ord("a") + 1
            out.append(code)
        elif len(k) == 1:
            out.append(ord(k))
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


def _write(f: Any, data: bytes) -> None:
    try:
        f.write(data)
        f.flush()
    except BrokenPipeError:
        pass


def copy_output(read: Callable[[int], bytes], tty: bool, out: Any = None,
                err: Any = None) -> None:
    """Copy a stream to stdout/stderr until its end: raw for TTYs, else demuxed."""
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    if tty:
        while True:
            c = read(1 << 16)
            if not c:
                return
            _write(out, c)
    buf = b""
    while True:
        c = read(1 << 16)
        if not c:
            return
        buf += c
        while len(buf) >= 8:
            size = int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + size:
                break
            payload = buf[8:8 + size]
            _write(err if buf[0] == 2 else out, payload)
            buf = buf[8 + size:]


class RawTerminal:
    """Puts the local terminal (stdin) in raw mode; restores it on exit."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.saved: Any = None

    def __enter__(self) -> "RawTerminal":
        import termios
        import tty

        try:
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)
        except termios.error:
            self.saved = None
        return self

    def restore(self) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None

    def __exit__(self, *a: Any) -> None:
        self.restore()


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    try:
        sz = os.get_terminal_size(fd)
    except OSError:
        return None
    return sz.lines, sz.columns


def monitor_tty_size(resize: Callable[[int, int], None]) -> None:
    """Send the terminal's size now and on every SIGWINCH."""
    import signal

    def send(*_: Any) -> None:
        s = terminal_size(1) or terminal_size(0)
        if s:
            try:
                resize(*s)
            except Exception:
                pass

    send()
    try:
        signal.signal(signal.SIGWINCH, send)
    except ValueError:
        pass


def forward_signals(kill: Callable[[str], None]) -> None:
    """docker's --sig-proxy: signals this process gets go to the container."""
    import _signal  # `signal` builds its enums at import: ~5 ms

    def handler(signum: int, _frame: Any) -> None:
        import threading

        threading.Thread(target=lambda: _quiet(kill, str(signum)), daemon=True).start()

    for s in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT,
              _signal.SIGUSR1, _signal.SIGUSR2):
        try:
            _signal.signal(s, handler)
        except (ValueError, OSError):
            pass


def _quiet(fn: Callable[..., Any], *a: Any) -> None:
    try:
        fn(*a)
    except Exception:
        pass


class _Flag:
    """A one-way flag set by the stdin thread, read after the output ends."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def stream(h: Any, tty: bool, stdin: bool, detach_keys: str | None = None,
           on_started: Callable[[], None] | None = None) -> None:
    """docker's hijackedIOStreamer: pump stdin into the connection (raw mode
    and detach keys for TTYs), copy the output out; returns when the output
    ends, raises DetachError on the detach sequence."""
    keys = parse_detach_keys(detach_keys) if tty and stdin else b""
    detached = _Flag()
    raw = RawTerminal(0) if tty and stdin and os.isatty(0) else None

    def pump() -> None:
        matched = 0
        held = b""
        try:
            while stdin:
                try:
                    data = os.read(0, 32 * 1024)
                except OSError:
                    break
                if not data:
                    break
                if keys:
                    out = bytearray()
                    for b in data:
                        if b == keys[matched]:
                            matched += 1
                            held += bytes([b])
                            if matched == len(keys):
                                detached.set()
                                h.close_write()
                                try:
                                    h.sock.shutdown(2)
                                except OSError:
                                    pass
                                return
                            continue
                        if held:
                            out += held
                            held, matched = b"", 0
                        out.append(b)
                    data = bytes(out)
                if data:
                    try:
                        h.send(data)
                    except OSError:
                        break
        finally:
            if not detached.is_set():
                h.close_write()

    if raw:
        raw.__enter__()
    try:
        if stdin:
            import threading  # only with stdin: ~4 ms to import

            threading.Thread(target=pump, daemon=True).start()
        else:
            h.close_write()
        if on_started:
            on_started()
        copy_output(h.read, tty)
    finally:
        if raw:
            raw.restore()
    if detached.is_set():
        raise DetachError()
