//! Docker's `json-file` log driver: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}`,
//! with max-size/max-file rotation (`<log>.1`, `<log>.2`, ...).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

/// Longest line kept whole; longer output is split into several entries (Docker: 16 KiB).
const MAX_LINE: usize = 16 * 1024;

pub struct JsonLog {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_file: u32,
    pending: [Vec<u8>; 2],
}

pub fn now() -> (i64, u32) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec as u32)
}

/// RFC 3339 with nanoseconds, UTC, trailing zeros trimmed (Go's RFC3339Nano).
pub fn rfc3339_nano(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let frac = if nanos == 0 {
        String::new()
    } else {
        let f = format!(".{nanos:09}");
        f.trim_end_matches('0').to_string()
    };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

/// JSON string body the way Go's encoding/json writes it (HTML-safe, invalid UTF-8 -> U+FFFD).
pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

pub fn entry(line: &[u8], stream: &str, secs: i64, nanos: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 80);
    out.extend_from_slice(b"{\"log\":\"");
    escape_into(&mut out, line);
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    out.extend_from_slice(rfc3339_nano(secs, nanos).as_bytes());
    out.extend_from_slice(b"\"}\n");
    out
}

impl JsonLog {
    /// `max_size` 0 = unlimited; `max_file` >= 1.
    pub fn open(path: PathBuf, max_size: u64, max_file: u32) -> std::io::Result<JsonLog> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog { path, file: Some(file), size, max_size, max_file: max_file.max(1), pending: [Vec::new(), Vec::new()] })
    }

    /// Feed output of stream 0 (stdout) or 1 (stderr); complete lines are written.
    pub fn write(&mut self, stream: usize, data: &[u8]) {
        self.pending[stream].extend_from_slice(data);
        let (secs, nanos) = now();
        loop {
            let buf = &self.pending[stream];
            let cut = match buf.iter().position(|b| *b == b'\n') {
                Some(i) if i < MAX_LINE => i + 1,
                _ if buf.len() >= MAX_LINE => MAX_LINE,
                _ => break,
            };
            let line: Vec<u8> = self.pending[stream].drain(..cut).collect();
            self.emit(&line, stream, secs, nanos);
        }
    }

    /// Write whatever is pending (output without a final newline), e.g. at exit.
    pub fn flush(&mut self) {
        let (secs, nanos) = now();
        for s in 0..2 {
            if !self.pending[s].is_empty() {
                let line = std::mem::take(&mut self.pending[s]);
                self.emit(&line, s, secs, nanos);
            }
        }
    }

    fn emit(&mut self, line: &[u8], stream: usize, secs: i64, nanos: u32) {
        let e = entry(line, if stream == 0 { "stdout" } else { "stderr" }, secs, nanos);
        if let Some(f) = self.file.as_mut() {
            if f.write_all(&e).is_ok() {
                self.size += e.len() as u64;
            }
        }
        if self.max_size > 0 && self.size >= self.max_size {
            self.rotate();
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let name = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if self.max_file > 1 {
            let _ = std::fs::remove_file(name(self.max_file - 1));
            for i in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            let _ = std::fs::rename(&self.path, name(1));
        }
        self.file = OpenOptions::new().create(true).write(true).truncate(true).open(&self.path).ok();
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn time_format() {
        assert_eq!(rfc3339_nano(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(1_767_323_045, 123_450_000), "2026-01-02T03:04:05.12345Z");
        assert_eq!(rfc3339_nano(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
    }
    #[test]
    fn entries() {
        let e = entry(b"hi \"<x>\"\n\x01\xff", "stdout", 0, 5);
        assert_eq!(
            String::from_utf8(e).unwrap(),
            "{\"log\":\"hi \\\"\\u003cx\\u003e\\\"\\n\\u0001\u{fffd}\",\"stream\":\"stdout\",\"time\":\"1970-01-01T00:00:00.000000005Z\"}\n"
        );
    }
    #[test]
    fn lines_and_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut l = JsonLog::open(p.clone(), 300, 3).unwrap();
        l.write(0, b"a\nb");
        l.write(0, b"c\n");
        l.write(1, b"err");
        l.flush();
        let s = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("{\"log\":\"a\\n\",\"stream\":\"stdout\""));
        assert!(lines[1].starts_with("{\"log\":\"bc\\n\""));
        assert!(lines[2].starts_with("{\"log\":\"err\",\"stream\":\"stderr\""));
        for _ in 0..20 {
            l.write(0, b"0123456789012345678901234567890123456789\n");
        }
        assert!(d.path().join("c-json.log.1").exists());
        assert!(d.path().join("c-json.log.2").exists());
        assert!(!d.path().join("c-json.log.3").exists());
        assert!(std::fs::metadata(&p).unwrap().len() < 300);
    }
}
