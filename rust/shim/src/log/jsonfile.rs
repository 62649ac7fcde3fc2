//! Docker's `json-file` log driver: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}`
//! (with `"attrs":{...}` before `time` when labels/env options name some),
//! in a file rotated by max-size/max-file (`<log>.1`, `.2`... or `.1.gz`).

use super::rotate::RotatingFile;
use super::{Driver, Message};

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

/// One line of the file; `line` already has its newline (none for a
/// partial message that isn't the last), an empty one is left out as Go's
/// omitempty does.
pub fn entry(line: &[u8], stream: &str, attrs: Option<&str>, secs: i64, nanos: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 80);
    out.push(b'{');
    if !line.is_empty() {
        out.extend_from_slice(b"\"log\":\"");
        escape_into(&mut out, line);
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.push(b'"');
    if let Some(a) = attrs {
        out.extend_from_slice(b",\"attrs\":");
        out.extend_from_slice(a.as_bytes());
    }
    out.extend_from_slice(b",\"time\":\"");
    out.extend_from_slice(rfc3339_nano(secs, nanos).as_bytes());
    out.extend_from_slice(b"\"}\n");
    out
}

pub struct JsonFile {
    file: RotatingFile,
    attrs: Option<String>,
}

impl JsonFile {
    pub fn new(file: RotatingFile, attrs: Option<String>) -> JsonFile {
        JsonFile { file, attrs }
    }
}

impl Driver for JsonFile {
    fn log(&mut self, m: &Message) {
        let mut line = m.line.to_vec();
        if m.partial.as_ref().is_none_or(|p| p.last) {
            line.push(b'\n');
        }
        let e = entry(&line, m.source, self.attrs.as_deref(), m.secs, m.nanos);
        self.file.write_entry(&e, m.secs, m.nanos);
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
        let e = entry(b"hi \"<x>\"\n\x01\xff", "stdout", None, 0, 5);
        assert_eq!(
            String::from_utf8(e).unwrap(),
            "{\"log\":\"hi \\\"\\u003cx\\u003e\\\"\\n\\u0001\u{fffd}\",\"stream\":\"stdout\",\"time\":\"1970-01-01T00:00:00.000000005Z\"}\n"
        );
    }
    #[test]
    fn attrs_and_partials() {
        assert_eq!(
            String::from_utf8(entry(b"x\n", "stderr", Some("{\"a\":\"b\"}"), 0, 0)).unwrap(),
            "{\"log\":\"x\\n\",\"stream\":\"stderr\",\"attrs\":{\"a\":\"b\"},\"time\":\"1970-01-01T00:00:00Z\"}\n"
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut l = super::super::Logger::new(vec![Box::new(JsonFile::new(RotatingFile::open(p.clone(), 0, 1, false).unwrap(), None))]);
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
    }
}
