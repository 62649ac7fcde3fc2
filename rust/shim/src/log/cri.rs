//! The `cri` log driver: the file kubelet reads, in the CRI log format, one
//! record a line: `<time> <stdout|stderr> <P|F> <content>\n`. F closes a line
//! (its newline, or `\r\n`, is not kept in the content); P is a piece of one:
//! the first `max-line` bytes of a longer line, or what was left without a
//! newline when the stream ended. The time is RFC 3339 with nanoseconds,
//! taken when the record is written, in UTC (containerd writes the node's
//! local time with its offset: the same on a UTC node, and kubelet parses
//! either).
//!
//! The driver cuts lines itself, as containerd's CRI logger does (its
//! `max_container_log_line_size`, 16 KiB), not as dockerd's copier. It
//! appends and never rotates: kubelet renames the file and asks for a
//! reopen (`ReopenContainerLog`), after which records go to a new file at
//! the same path.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// containerd's default `max_container_log_line_size`.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;

/// One record, newline included.
pub fn record(time: &str, stream: &str, partial: bool, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(time.len() + content.len() + 12);
    out.extend_from_slice(time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// The records whole lines and over-long pieces at the start of `buf` make,
/// as (partial, content) with the bytes they took; what is left waits for
/// more output. `max` 0: no limit.
pub fn cut(buf: &[u8], max: usize) -> (Vec<(bool, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        let nl = rest.iter().position(|b| *b == b'\n');
        let line_len = nl.map(|i| if i > 0 && rest[i - 1] == b'\r' { i - 1 } else { i });
        match line_len {
            Some(n) if max == 0 || n <= max => {
                out.push((false, &rest[..n]));
                at += nl.unwrap_or(0) + 1;
            }
            // Longer than max: its first max bytes, once more than max are
            // here (a `\r` just past max may still be the start of `\r\n`).
            _ if max > 0 && (rest.len() > max + 1 || (rest.len() == max + 1 && rest[max] != b'\r') || line_len.is_some()) => {
                out.push((true, &rest[..max]));
                at += max;
            }
            _ => break,
        }
    }
    (out, at)
}

/// The file, made with its directories; errors in Go's words ("open /x: is a directory").
fn open(path: &Path) -> Result<File, String> {
    let go = |op: &str, p: &Path, errno: i32| format!("{op} {}: {}", p.display(), dockyard_runtime::strerror(errno));
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(|e| {
            // Go's MkdirAll: something else in the way is "not a directory"
            let errno = match e.raw_os_error() {
                Some(libc::EEXIST) => libc::ENOTDIR,
                n => n.unwrap_or(libc::EIO),
            };
            go("mkdir", dir, errno)
        })?;
    }
    OpenOptions::new().create(true).append(true).mode(0o640).open(path).map_err(|e| go("open", path, e.raw_os_error().unwrap_or(libc::EIO)))
}

pub struct Cri {
    path: PathBuf,
    file: File,
    max: usize,
    /// Output of stdout and stderr not yet written: the start of a line.
    pending: [Vec<u8>; 2],
}

impl Cri {
    pub fn open(path: PathBuf, max: usize) -> Result<Cri, String> {
        let file = open(&path)?;
        Ok(Cri { path, file, max, pending: [Vec::new(), Vec::new()] })
    }

    /// Close the file and open the one now at the path (a new one when it
    /// was renamed away). On failure the old file is kept.
    pub fn reopen(&mut self) -> Result<(), String> {
        self.file = open(&self.path)?;
        Ok(())
    }

    fn put(&mut self, stream: usize, recs: &[(bool, &[u8])]) {
        let (secs, nanos) = super::now();
        let time = super::rfc3339_nano(secs, nanos);
        let name = if stream == 0 { "stdout" } else { "stderr" };
        let mut out = Vec::new();
        for (partial, content) in recs {
            out.extend_from_slice(&record(&time, name, *partial, content));
        }
        // Like containerd, a failed write loses the records and the copy goes on.
        let _ = self.file.write_all(&out);
    }

    pub fn write(&mut self, stream: usize, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.pending[stream]);
        buf.extend_from_slice(data);
        let (recs, used) = cut(&buf, self.max);
        if !recs.is_empty() {
            self.put(stream, &recs);
        }
        buf.drain(..used);
        self.pending[stream] = buf;
    }

    /// The end of the output: a line without its newline is written as P
    /// (containerd does the same at EOF).
    pub fn flush(&mut self) {
        for s in 0..2 {
            let buf = std::mem::take(&mut self.pending[s]);
            if !buf.is_empty() {
                self.put(s, &[(true, &buf)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        assert_eq!(record("2026-01-02T03:04:05.5Z", "stderr", false, b"hi"), b"2026-01-02T03:04:05.5Z stderr F hi\n");
        assert_eq!(record("t", "stdout", true, b""), b"t stdout P \n");
    }

    #[test]
    fn cuts_lines_crlf_and_long_lines() {
        let (r, used) = cut(b"a\nb\r\n\nrest", 4);
        assert_eq!(r, vec![(false, &b"a"[..]), (false, &b"b"[..]), (false, &b""[..])]);
        assert_eq!(used, 6);
        // exactly max is one F; max + 1 is P then F
        assert_eq!(cut(b"abcd\n", 4).0, vec![(false, &b"abcd"[..])]);
        assert_eq!(cut(b"abcd\r\n", 4).0, vec![(false, &b"abcd"[..])]);
        assert_eq!(cut(b"abcde\n", 4).0, vec![(true, &b"abcd"[..]), (false, &b"e"[..])]);
        // without a newline: cut only once more than max is here
        assert_eq!(cut(b"abcd", 4), (vec![], 0));
        assert_eq!(cut(b"abcd\r", 4), (vec![], 0));
        assert_eq!(cut(b"abcdx", 4), (vec![(true, &b"abcd"[..])], 4));
        assert_eq!(cut(&[b'x'; 10], 0), (vec![], 0));
    }

    #[test]
    fn file_records_and_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pods/c/0.log");
        let mut c = Cri::open(p.clone(), 8).unwrap();
        c.write(0, b"one\ntw");
        c.write(1, b"err\n");
        c.write(0, b"o\n");
        c.write(0, &[b'x'; 20]);
        c.write(0, b"\n");
        std::fs::rename(&p, d.path().join("pods/c/0.log.1")).unwrap();
        c.reopen().unwrap();
        c.write(1, b"tail");
        c.flush();
        let old = std::fs::read_to_string(d.path().join("pods/c/0.log.1")).unwrap();
        let fields: Vec<(String, String, String)> = old
            .lines()
            .map(|l| {
                let mut f = l.splitn(4, ' ');
                let t = f.next().unwrap();
                assert!(t.ends_with('Z') && t.contains('T'), "{t}");
                (f.next().unwrap().into(), f.next().unwrap().into(), f.next().unwrap().into())
            })
            .collect();
        let want = [
            ("stdout", "F", "one"),
            ("stderr", "F", "err"),
            ("stdout", "F", "two"),
            ("stdout", "P", "xxxxxxxx"),
            ("stdout", "P", "xxxxxxxx"),
            ("stdout", "F", "xxxx"),
        ];
        let want: Vec<(String, String, String)> = want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
        assert_eq!(fields, want);
        let new = std::fs::read_to_string(&p).unwrap();
        assert!(new.ends_with(" stderr P tail\n"), "{new}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
    }
}
