"""The classic builder's JSON stream, byte for byte as dockerd 20.10 writes
it: one Go-encoded JSON object per write, each ended by `\\r\\n`; `Step N/M
: ...` and its newline as two writes; RUN's stderr between `ESC[91m` and
`ESC[0m`; `{"aux":{"ID":...}}` after each stage; errors as
`{"errorDetail":{...},"error":...}`. With `q`, messages are held back: a
success prints only the image ID, a failure the held messages then the error."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..imageconfig import encode

__all__ = ["BuildOutput", "StageOutput", "StepFailed", "encode_message"]

Write = Callable[[bytes], None]


def encode_message(msg: dict[str, Any]) -> bytes:
    return encode(msg) + b"\r\n"


class StepFailed(Exception):
    """A failure reported in the stream with dockerd's `code` (a RUN's exit
    status)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class BuildOutput:
    def __init__(self, write: Write, quiet: bool = False) -> None:
        self._write = write
        self.quiet = quiet
        self._held: list[bytes] = []
        #: Whether anything reached the client (an error before it is an HTTP status).
        self.started = False

    def send(self, msg: dict[str, Any]) -> None:
        data = encode_message(msg)
        if self.quiet:
            self._held.append(data)
            return
        self.started = True
        self._write(data)

    def stream(self, text: str) -> None:
        self.send({"stream": text})

    def stderr(self, text: str) -> None:
        self.stream(f"\x1b[91m{text}\x1b[0m")

    def step(self, text: str) -> None:
        self.stream(text)
        self.stream("\n")

    def aux(self, image_id: str) -> None:
        self.send({"aux": {"ID": image_id}})

    def error(self, message: str, code: int = 0) -> None:
        """The in-band error; with `q` the held output goes first."""
        detail: dict[str, Any] = {"code": code, "message": message} if code else \
            {"message": message}
        self.flush_held()
        self.started = True
        self._write(encode_message({"errorDetail": detail, "error": message}))

    def flush_held(self) -> None:
        held, self._held = self._held, []
        for data in held:
            self.started = True
            self._write(data)

    def quiet_result(self, image_id: str) -> None:
        """`q`'s only output on success."""
        self._held = []
        self.started = True
        self._write(encode_message({"stream": image_id + "\n"}))


def _nowhere(data: bytes) -> None:
    raise AssertionError("a stage's output goes through its build's")


class StageOutput(BuildOutput):
    """The messages of a stage built beside others: held while an earlier
    stage is still being printed, then (`go_live`, when the stage's turn
    comes) written out and passed straight through, so the client reads
    the stages in file order, the one at the head live."""

    def __init__(self, out: BuildOutput) -> None:
        super().__init__(_nowhere, out.quiet)
        self._to = out
        self._msgs: list[dict[str, Any]] = []
        self._live = False
        self._lock = threading.Lock()

    def send(self, msg: dict[str, Any]) -> None:
        with self._lock:
            if not self._live:
                self._msgs.append(msg)
                return
        self._to.send(msg)

    def go_live(self) -> None:
        """Write what is held (the caller's thread) and pass on what follows."""
        with self._lock:
            msgs, self._msgs = self._msgs, []
            try:
                for m in msgs:
                    self._to.send(m)
            finally:
                self._live = True
