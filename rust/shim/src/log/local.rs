//! Docker's `local` log driver: each message is a protobuf `LogEntry`
//! (moby's api/types/plugins/logdriver/entry.proto) framed by its size as a
//! 4-byte big-endian number before and after, so the file reads forwards and
//! backwards (tail):
//!
//! ```text
//! message LogEntry { string source = 1; int64 time_nano = 2; bytes line = 3;
//!                    bool partial = 4; PartialLogEntryMetadata partial_log_metadata = 5; }
//! message PartialLogEntryMetadata { bool last = 1; string id = 2; int32 ordinal = 3; }
//! ```
//!
//! proto3: fields at their zero value are not written. The line has no
//! newline (a reader adds it unless the entry is a partial that isn't last).
//! dockerd keeps it in `<container>/local-logs/container.log`, 20 MiB x 5
//! files, gzipped when rotated.

use super::rotate::RotatingFile;
use super::{Driver, Message};

pub const DEFAULT_MAX_SIZE: u64 = 20 * 1024 * 1024;
pub const DEFAULT_MAX_FILE: u32 = 5;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field `n` with wire type 2 (length-delimited).
fn bytes_field(out: &mut Vec<u8>, n: u8, b: &[u8]) {
    if !b.is_empty() {
        out.push(n << 3 | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// Field `n` with wire type 0 (varint); int64/int32 negatives as 10-byte two's complement.
fn varint_field(out: &mut Vec<u8>, n: u8, v: i64) {
    if v != 0 {
        out.push(n << 3);
        varint(out, v as u64);
    }
}

/// The `LogEntry` protobuf of `m`.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.line.len() + 32);
    bytes_field(&mut out, 1, m.source.as_bytes());
    varint_field(&mut out, 2, m.secs * 1_000_000_000 + m.nanos as i64);
    bytes_field(&mut out, 3, m.line);
    if let Some(p) = &m.partial {
        varint_field(&mut out, 4, 1);
        let mut md = Vec::with_capacity(80);
        varint_field(&mut md, 1, p.last as i64);
        bytes_field(&mut md, 2, p.id.as_bytes());
        varint_field(&mut md, 3, p.ordinal as i32 as i64);
        out.push(5 << 3 | 2);
        varint(&mut out, md.len() as u64);
        out.extend_from_slice(&md);
    }
    out
}

/// The record as it is written: size, entry, size.
pub fn frame(entry: &[u8]) -> Vec<u8> {
    let n = (entry.len() as u32).to_be_bytes();
    let mut out = Vec::with_capacity(entry.len() + 8);
    out.extend_from_slice(&n);
    out.extend_from_slice(entry);
    out.extend_from_slice(&n);
    out
}

pub struct Local {
    file: RotatingFile,
}

impl Local {
    pub fn new(file: RotatingFile) -> Local {
        Local { file }
    }
}

impl Driver for Local {
    fn log(&mut self, m: &Message) {
        self.file.write_entry(&frame(&encode(m)), m.secs, m.nanos);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Partial;
    use super::*;

    /// Bytes taken from a file that dockerd 20.10's local driver wrote
    /// (`echo line-84-abc...z` at 2026-12-05T14:51:...).
    #[test]
    fn matches_dockerd_bytes() {
        let theirs: &[u8] = b"\x00\x00\x00\x36\x0a\x06stdout\x10\xba\xc7\xb9\xd8\xc6\xe4\x98\xf7\x18\x1a\x22line-84-abcdefghijklmnopqrstuvwxyz\x00\x00\x00\x36";
        // time_nano as dockerd encoded it
        let mut t: u64 = 0;
        for (i, b) in theirs[13..22].iter().enumerate() {
            t |= ((b & 0x7f) as u64) << (7 * i);
        }
        let m = Message {
            source: "stdout",
            line: b"line-84-abcdefghijklmnopqrstuvwxyz",
            secs: (t / 1_000_000_000) as i64,
            nanos: (t % 1_000_000_000) as u32,
            partial: None,
        };
        assert_eq!(frame(&encode(&m)), theirs);
    }

    /// dockerd's last record of a line without a newline at EOF: partial,
    /// ordinal 1, not last.
    #[test]
    fn partial_entry_matches_dockerd() {
        let id = "9abfd389828db2db35ec5f1187186e23ba7a1f3fc12f0ec829cb789fa9596834";
        let theirs: Vec<u8> = [
            &b"\n\x06stdout\x10\xb0\xf9\xa1\xfa\xc6\xe4\x98\xf7\x18\x1a\x07partial \x01*D\x12@"[..],
            id.as_bytes(),
            b"\x18\x01",
        ]
        .concat();
        let mut t: u64 = 0;
        for (i, b) in theirs[9..18].iter().enumerate() {
            t |= ((b & 0x7f) as u64) << (7 * i);
        }
        let m = Message {
            source: "stdout",
            line: b"partial",
            secs: (t / 1_000_000_000) as i64,
            nanos: (t % 1_000_000_000) as u32,
            partial: Some(Partial { id: id.into(), ordinal: 1, last: false }),
        };
        assert_eq!(encode(&m), theirs);
    }

    #[test]
    fn last_partial_and_empty_line() {
        let m = Message { source: "stderr", line: b"", secs: 0, nanos: 1, partial: Some(Partial { id: "x".into(), ordinal: 2, last: true }) };
        assert_eq!(encode(&m), b"\n\x06stderr\x10\x01 \x01*\x07\x08\x01\x12\x01x\x18\x02");
    }
}
