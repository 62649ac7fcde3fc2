"""The logs the shim writes, read back for `docker logs` with Docker's
tail/since/until/timestamps: json-file (`<id>-json.log`, one JSON object a
line) and local (`local-logs/container.log`, or a driver's cache:
size-framed protobuf `LogEntry` records), each rotated to `.1`, `.2`...
or `.1.gz`, `.2.gz`... when compressed; and cri (kubelet's format at the
driver's `path`: `<time> <stream> <P|F> <content>` lines, P pieces joined
into their line, the same bytes kubelet's reader gives by writing them one
after the other; kubelet rotates that file under names of its own, so only
the live one is read). `fmt` names the format."""

from __future__ import annotations

import calendar
import gzip
import json
import os
import re
import struct
import time
from pathlib import Path
from typing import Iterator

from ..errors import InvalidParameter
from ..imageconfig import parse_time

STDOUT, STDERR = 1, 2
Record = tuple[int, bytes, str]


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


_CRI_TIME = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def cri_time(t: bytes) -> str | None:
    """A CRI record's time as RFC3339Nano in UTC (containerd may write the
    node's offset); None when it isn't one."""
    m = _CRI_TIME.fullmatch(t)
    if m is None:
        return None
    if m.group(3) == b"Z":
        return t.decode()
    secs = calendar.timegm(time.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S"))
    sign, hh, mm = m.group(3)[:1], int(m.group(3)[1:3]), int(m.group(3)[4:6])
    secs -= (1 if sign == b"+" else -1) * (hh * 3600 + mm * 60)
    frac = int((m.group(2) or b"0").ljust(9, b"0"))
    return rfc3339_nano(secs * 1_000_000_000 + frac)


def parse_cri_line(line: bytes) -> tuple[int, bytes, str, bool] | None:
    """(stream, content, time, partial) of one line without its newline, as
    kubelet's parseCRILog reads it (a tag may carry more after a `:`)."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
        return None
    t = cri_time(parts[0])
    if t is None:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return (STDERR if parts[1] == b"stderr" else STDOUT), content, t, \
        parts[2].split(b":", 1)[0] == b"P"


def _cri_records(data: bytes, final: bool) -> tuple[list[Record], int]:
    """The lines of `data` up to its last newline as records, each stream's P
    pieces joined with the F that ends them (the time is the first piece's).
    Unless `final`, the read stops after the last line where no stream has
    pieces waiting (the rest is read again with what follows); `final` gives
    waiting pieces as a record without its newline (a line the container
    left unfinished, or whose end hasn't come yet)."""
    out: list[Record] = []
    held: dict[int, tuple[list[bytes], str]] = {}
    clean = kept = pos = 0  # kept: the records found by `clean`
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        rec = parse_cri_line(data[pos:nl])
        pos = nl + 1
        if rec is not None:
            stream, content, t, partial = rec
            pieces, first = held.pop(stream, ([], t))
            pieces.append(content)
            if partial:
                held[stream] = (pieces, first)
            else:
                out.append((stream, b"".join(pieces) + b"\n", first))
        if not held:
            clean, kept = pos, len(out)
    if not final:
        return out[:kept], clean
    for stream, (pieces, first) in held.items():
        out.append((stream, b"".join(pieces), first))
    return out, pos


def parse_records(data: bytes, fmt: str, final: bool = False
                  ) -> tuple[list[tuple[int, bytes, str]], int]:
    """The whole records in `data` and how many bytes they take (an
    incomplete last one is left for follow mode; for cri see _cri_records)."""
    out: list[tuple[int, bytes, str]] = []
    if fmt == "cri":
        return _cri_records(data, final)
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


# Bytes read at a time: what a log read holds in memory is about this much
# (plus the records a tail keeps), whatever the log's size.
CHUNK = 1 << 20


def _open(p: Path):
    return gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")


def _forward(p: Path, fmt: str, stop: int | None = None) -> Iterator[tuple[list[Record], int]]:
    """The whole records of one file, a chunk at a time, with the offset
    reached after each batch; `stop` ends the read there (the live file's
    size when the read began: what is appended later is for follow)."""
    with _open(p) as f:
        buf, pos = b"", 0
        while True:
            want = CHUNK if stop is None else min(CHUNK, stop - pos - len(buf))
            data = f.read(want) if want > 0 else b""
            if not data:
                break
            buf += data
            recs, used = parse_records(buf, fmt)
            pos += used
            buf = buf[used:]
            if recs:
                yield recs, pos
        if not buf:
            return
        if fmt == "cri":
            recs, used = parse_records(buf, fmt, final=True)
            if recs:
                yield recs, pos + used
            return
        if fmt != "local" and stop is None:
            # a last line without its newline (a file that was rotated mid-write)
            rec = parse_line(buf)
            if rec is not None:
                yield [rec], pos


def _backward_json(p: Path, n: int, fmt: str = "json-file") -> tuple[list[Record], int]:
    """The last `n` records of a plain json-file (or cri file), read from its
    end; and the end of its last whole line (a line still being written is
    left to follow). cri reads back to one F line more than `n` records
    take, so the pieces after it make whole records (a long line of one
    stream cut by many lines of the other may still lose its first pieces)."""
    lines: list[bytes] = []
    end: int | None = None
    count = 0  # records (json-file) or F lines (cri) in `lines`
    need = n + 1 if fmt == "cri" else n
    with open(p, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        data = b""
        while pos > 0 and count < need:
            step = min(CHUNK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
            if end is None:
                cut = data.rfind(b"\n")
                if cut < 0:
                    continue
                end = pos + cut + 1
                data = data[:cut + 1]
            parts = data.split(b"\n")
            # parts[0] may be the end of a line that begins in an earlier block
            new = [x for x in (parts if pos == 0 else parts[1:]) if x]
            lines[:0] = new
            count += len(new) if fmt != "cri" else \
                sum(1 for x in new if (r := parse_cri_line(x)) is not None and not r[3])
            data = b"" if pos == 0 else parts[0]
    if fmt == "cri":
        return _cri_records(b"".join(x + b"\n" for x in lines), True)[0][-n:], end or 0
    recs = [r for r in (parse_line(x) for x in lines[-n:]) if r is not None]
    return recs, end or 0


def _backward_local(p: Path, n: int) -> tuple[list[Record], int] | None:
    """The last `n` records of a plain local-format file, read from its end
    through each record's trailing size; None when the end isn't a record's
    (the caller then reads forward)."""
    out: list[bytes] = []
    with open(p, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        pos = size
        while pos >= 8 and len(out) < n:
            f.seek(pos - 4)
            (m,) = struct.unpack(">I", f.read(4))
            start = pos - 8 - m
            if start < 0:
                return None
            f.seek(start)
            rec = f.read(m + 4)
            if struct.unpack_from(">I", rec, 0)[0] != m:
                return None
            out.append(rec[4:])
            pos = start
    return [decode_entry(b) for b in reversed(out)], size


def _last(p: Path, fmt: str, n: int) -> tuple[list[Record], int]:
    """The last `n` records of one file and the offset of its end."""
    if p.suffix != ".gz":
        if fmt != "local":
            return _backward_json(p, n, fmt)
        got = _backward_local(p, n)
        if got is not None:
            return got
    keep: list[Record] = []
    offset = 0
    for recs, offset in _forward(p, fmt):
        keep = (keep + recs)[-n:]
    return keep, offset


class LogScan:
    """One `docker logs` read: batches of records in order, filtered as
    dockerd filters (tail counts records of both streams, then since, until
    and the streams asked for apply). `offset` is where follow goes on in
    the live file, once the batches are exhausted."""

    def __init__(self, path: Path, stdout: bool = True, stderr: bool = True, since: float = 0,
                 until: float = 0, tail: int = -1, fmt: str = "json-file") -> None:
        self.path, self.fmt, self.tail = path, fmt, tail
        self.filters = (stdout, stderr, since, until)
        self.offset = 0

    def batches(self) -> Iterator[list[Record]]:
        for recs in (self._tail() if self.tail >= 0 else self._all()):
            kept = [r for r in recs if wanted(r, *self.filters)]
            if kept:
                yield kept

    def _all(self) -> Iterator[list[Record]]:
        try:
            live_size = os.path.getsize(self.path)
        except OSError:
            live_size = 0
        for p in log_files(self.path):
            live = p == self.path
            try:
                for recs, used in _forward(p, self.fmt, live_size if live else None):
                    if live:
                        self.offset = used
                    yield recs
            except (OSError, EOFError):
                continue  # rotated away, or being compressed, while we read

    def _tail(self) -> Iterator[list[Record]]:
        if self.tail == 0:
            if self.path.exists():
                self.offset = _last(self.path, self.fmt, 1)[1]
            return
        need = self.tail
        found: list[list[Record]] = []
        for p in reversed(log_files(self.path)):
            try:
                recs, end = _last(p, self.fmt, need)
            except (OSError, EOFError):
                continue
            if p == self.path:
                self.offset = end
            found.insert(0, recs)
            need -= len(recs)
            if need <= 0:
                break
        yield from found


def read(path: Path, stdout: bool = True, stderr: bool = True, since: float = 0,
         until: float = 0, tail: int = -1, fmt: str = "json-file"
         ) -> tuple[list[Record], int]:
    """All the records a LogScan finds, and the offset reached in the live file."""
    scan = LogScan(path, stdout, stderr, since, until, tail, fmt)
    records = [r for batch in scan.batches() for r in batch]
    return records, scan.offset


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


class LogFollower:
    """What is appended to a live log, read through a file opened up front:
    lines a container wrote just before it was removed (its log file with
    it) are still read, and a rotated file is read to its end before the
    new one. Open it before reading what is there already."""

    def __init__(self, path: Path, fmt: str = "json-file") -> None:
        self.path, self.fmt = path, fmt
        self.offset = 0
        self.more = False  # the last read stopped short of the file's end
        self.f = self._open()

    def _open(self):
        try:
            return open(self.path, "rb")  # noqa: SIM115 - kept open while following
        except OSError:
            return None

    def read(self) -> list[tuple[int, bytes, str]]:
        if self.f is None:
            self.f = self._open()
            if self.f is None:
                return []
        out: list[tuple[int, bytes, str]] = []
        self.more = False
        for _ in range(2):  # the open file, then the new one after a rotation
            size = os.fstat(self.f.fileno()).st_size
            if size < self.offset:
                self.offset = 0  # truncated in place
            if size > self.offset:
                # A chunk at a time: a follower behind a fast writer holds
                # about CHUNK, not all that was appended since its last read.
                left = size - self.offset
                self.f.seek(self.offset)
                data = self.f.read(min(left, CHUNK))
                # cri: pieces of a line whose end hasn't come are given as they are
                recs, used = parse_records(data, self.fmt, final=True)
                if not used and len(data) < left:  # one record longer than that
                    data += self.f.read(left - len(data))
                    recs, used = parse_records(data, self.fmt, final=True)
                out += recs
                self.offset += used
                if len(data) < left:
                    self.more = True  # the rest on the next call, before any rotation
                    break
            try:
                rotated = os.stat(self.path).st_ino != os.fstat(self.f.fileno()).st_ino
            except OSError:
                rotated = False  # removed with its container: nothing more will come
            if not rotated:
                break
            nf = self._open()
            if nf is None:
                break
            self.f.close()
            self.f, self.offset = nf, 0
        return out

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def parse_since(v: str | None) -> float:
    """`since`/`until`: Unix seconds with optional fraction (what the API
    takes; an RFC 3339 time is taken too). Anything else is dockerd's
    ParseInt error, as a 400 (dockerd answers it with a 500)."""
    if not v:
        return 0.0
    if _UNIX_TIME.fullmatch(v):
        return float(v)
    try:
        return parse_time(v)
    except (ValueError, OverflowError):
        sec, _, frac = v.partition(".")
        bad = frac if re.fullmatch(r"-?[0-9]+", sec) else sec
        quoted = '"' + bad.replace("\\", "\\\\").replace('"', '\\"') + '"'
        raise InvalidParameter(f"strconv.ParseInt: parsing {quoted}: invalid syntax") from None


_UNIX_TIME = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def iter_all(path: Path, fmt: str = "json-file") -> Iterator[tuple[int, bytes, str]]:
    for batch in LogScan(path, fmt=fmt).batches():
        yield from batch
