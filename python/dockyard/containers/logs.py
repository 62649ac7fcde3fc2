"""The json-file log the shim writes (`<id>-json.log`, rotated to `.1`, `.2`...):
reading it back for `docker logs`, with Docker's tail/since/until/timestamps."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from ..imageconfig import parse_time

STDOUT, STDERR = 1, 2


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream frame: [stream, 0, 0, 0, size (BE u32)] + data."""
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


def log_files(path: Path) -> list[Path]:
    """Oldest first: <log>.N ... <log>.1, <log>."""
    rotated = []
    i = 1
    while True:
        p = path.with_name(f"{path.name}.{i}")
        if not p.exists():
            break
        rotated.append(p)
        i += 1
    return list(reversed(rotated)) + ([path] if path.exists() else [])


def parse_line(line: bytes) -> tuple[int, bytes, str] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    stream = STDERR if rec.get("stream") == "stderr" else STDOUT
    return stream, rec.get("log", "").encode(), rec.get("time", "")


def read(path: Path, stdout: bool = True, stderr: bool = True, since: float = 0,
         until: float = 0, tail: int = -1) -> tuple[list[tuple[int, bytes, str]], int]:
    """Records in the log files, filtered; and the offset reached in the live file."""
    records: list[tuple[int, bytes, str]] = []
    offset = 0
    for p in log_files(path):
        with open(p, "rb") as f:
            data = f.read()
        if p == path:
            # An incomplete last line is left for follow mode.
            end = data.rfind(b"\n") + 1
            data, offset = data[:end], end
        for line in data.splitlines():
            rec = parse_line(line)
            if rec is None:
                continue
            if not wanted(rec, stdout, stderr, since, until):
                continue
            records.append(rec)
    if tail >= 0:
        records = records[-tail:] if tail else []
    return records, offset


def wanted(rec: tuple[int, bytes, str], stdout: bool, stderr: bool, since: float,
            until: float) -> bool:
    stream, _, t = rec
    if (stream == STDOUT and not stdout) or (stream == STDERR and not stderr):
        return False
    if since or until:
        ts = parse_time(t)
        if since and ts < since:
            return False
        if until and ts > until:
            return False
    return True


def render(rec: tuple[int, bytes, str], tty: bool, timestamps: bool) -> bytes:
    stream, data, t = rec
    if timestamps:
        data = t.encode() + b" " + data
    return data if tty else frame(stream, data)


def follow_new(path: Path, offset: int) -> tuple[list[tuple[int, bytes, str]], int]:
    """Complete lines appended to the live file since `offset` (handles rotation
    by starting over when the file shrank)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return [], offset
    if size < offset:
        offset = 0
    if size == offset:
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    end = data.rfind(b"\n") + 1
    out = [r for r in (parse_line(line) for line in data[:end].splitlines()) if r is not None]
    return out, offset + end


def parse_since(v: str | None) -> float:
    """`since`/`until`: Unix seconds with optional fraction (what the API takes)."""
    if not v:
        return 0.0
    try:
        return float(v)
    except ValueError:
        return parse_time(v)


def iter_all(path: Path) -> Iterator[tuple[int, bytes, str]]:
    recs, _ = read(path)
    yield from recs
