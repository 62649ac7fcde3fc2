"""The logs the shim writes, read back for `docker logs` with Docker's
tail/since/until/timestamps: json-file (`<id>-json.log`, one JSON object a
line) and local (`local-logs/container.log`, or a driver's cache:
size-framed protobuf `LogEntry` records), each rotated to `.1`, `.2`...
or `.1.gz`, `.2.gz`... when compressed. `fmt` names the format."""

from __future__ import annotations

import gzip
import json
import os
import struct
import time
from pathlib import Path
from typing import Iterator

from ..imageconfig import parse_time

STDOUT, STDERR = 1, 2


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream frame: [stream, 0, 0, 0, size (BE u32)] + data."""
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


def log_files(path: Path) -> list[Path]:
    """Oldest first: <log>.N[.gz] ... <log>.1[.gz], <log>."""
    rotated = []
    i = 1
    while True:
        p = path.with_name(f"{path.name}.{i}")
        if not p.exists():
            p = path.with_name(f"{path.name}.{i}.gz")
            if not p.exists():
                break
        rotated.append(p)
        i += 1
    return list(reversed(rotated)) + ([path] if path.exists() else [])


def rfc3339_nano(ns: int) -> str:
    """UTC, nanoseconds with trailing zeros trimmed (Go's RFC3339Nano)."""
    secs, frac = divmod(ns, 1_000_000_000)
    f = f".{frac:09d}".rstrip("0") if frac else ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f + "Z"


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def decode_entry(b: bytes) -> tuple[int, bytes, str]:
    """A `local` LogEntry (protobuf: source=1, time_nano=2, line=3,
    partial=4, partial_log_metadata=5 {last=1}) as a record; the newline
    the driver dropped comes back unless the entry is a partial not last."""
    source, ns, line, partial, last = "", 0, b"", False, False
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(b, i)
            if field == 2:
                ns = v - (1 << 64) if v >= 1 << 63 else v
            elif field == 4:
                partial = bool(v)
        elif wire == 2:
            n, i = _varint(b, i)
            val, i = b[i:i + n], i + n
            if field == 1:
                source = val.decode(errors="replace")
            elif field == 3:
                line = val
            elif field == 5:
                j = 0
                while j < len(val):
                    k, j = _varint(val, j)
                    if k & 7 == 0:
                        v, j = _varint(val, j)
                        if k >> 3 == 1:
                            last = bool(v)
                    elif k & 7 == 2:
                        m, j = _varint(val, j)
                        j += m
                    else:
                        break
        elif wire == 5:
            i += 4
        elif wire == 1:
            i += 8
        else:
            break
    if not partial or last:
        line += b"\n"
    return (STDERR if source == "stderr" else STDOUT), line, rfc3339_nano(ns)


def parse_records(data: bytes, fmt: str) -> tuple[list[tuple[int, bytes, str]], int]:
    """The whole records in `data` and how many bytes they take (an
    incomplete last one is left for follow mode)."""
    out: list[tuple[int, bytes, str]] = []
    if fmt == "local":
        i = 0
        while i + 4 <= len(data):
            (n,) = struct.unpack_from(">I", data, i)
            if i + 8 + n > len(data):
                break
            out.append(decode_entry(data[i + 4:i + 4 + n]))
            i += 8 + n
        return out, i
    end = data.rfind(b"\n") + 1
    out = [r for r in (parse_line(line) for line in data[:end].splitlines()) if r is not None]
    return out, end


def parse_line(line: bytes) -> tuple[int, bytes, str] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    stream = STDERR if rec.get("stream") == "stderr" else STDOUT
    return stream, rec.get("log", "").encode(), rec.get("time", "")


def read(path: Path, stdout: bool = True, stderr: bool = True, since: float = 0,
         until: float = 0, tail: int = -1, fmt: str = "json-file"
         ) -> tuple[list[tuple[int, bytes, str]], int]:
    """Records in the log files, filtered; and the offset reached in the live file."""
    records: list[tuple[int, bytes, str]] = []
    offset = 0
    for p in log_files(path):
        try:
            if p.suffix == ".gz":
                with gzip.open(p, "rb") as g:
                    data = g.read()
            else:
                with open(p, "rb") as f:
                    data = f.read()
        except (OSError, EOFError):
            continue  # rotated away, or being compressed, while we read
        recs, used = parse_records(data, fmt)
        if p == path:
            offset = used
        records += [r for r in recs if wanted(r, stdout, stderr, since, until)]
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


def follow_new(path: Path, offset: int, fmt: str = "json-file"
               ) -> tuple[list[tuple[int, bytes, str]], int]:
    """Whole records appended to the live file since `offset` (handles rotation
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
    out, used = parse_records(data, fmt)
    return out, offset + used


def parse_since(v: str | None) -> float:
    """`since`/`until`: Unix seconds with optional fraction (what the API takes)."""
    if not v:
        return 0.0
    try:
        return float(v)
    except ValueError:
        return parse_time(v)


def iter_all(path: Path, fmt: str = "json-file") -> Iterator[tuple[int, bytes, str]]:
    recs, _ = read(path, fmt=fmt)
    yield from recs
