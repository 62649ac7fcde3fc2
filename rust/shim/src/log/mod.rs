//! Docker's log drivers, as the shim runs them: the container's output is cut
//! into messages the way dockerd's copier cuts it (a line without its newline;
//! 16 KiB without a newline, or what is left at the end, is a partial message
//! with an id and an ordinal), and each message goes to the configured driver.
//!
//! Drivers (one module each): `json-file`, `local` (dockerd's protobuf
//! records), `journald` (the native journal protocol), `syslog`; `none` keeps
//! nothing. `cri` (kubelet's file format) cuts lines its own way, as
//! containerd does, so it takes the output before the copier. A driver that can't be read back (syslog) also writes a `local`
//! cache, as dockerd's "dual logging" does. The daemon resolves the options
//! (sizes, tags, fields) and hands them over as `--log-opt key=value`.

mod cri;
mod journald;
mod jsonfile;
mod local;
mod rotate;
mod syslog;

pub use jsonfile::rfc3339_nano;

use crate::args::Args;
use std::path::PathBuf;

/// Longest message kept whole; longer output is split (dockerd's copier buffer).
const MAX_LINE: usize = 16 * 1024;

/// Where a partial message stands in its line.
#[derive(Clone, Debug, PartialEq)]
pub struct Partial {
    pub id: String,
    pub ordinal: u32,
    pub last: bool,
}

/// One message: a line of output without its newline.
pub struct Message<'a> {
    /// "stdout" or "stderr".
    pub source: &'static str,
    pub line: &'a [u8],
    pub secs: i64,
    pub nanos: u32,
    pub partial: Option<Partial>,
}

pub trait Driver {
    fn log(&mut self, m: &Message);
}

pub fn now() -> (i64, u32) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec as u32)
}

/// 64 hex digits from the kernel's random pool (dockerd's stringid.GenerateRandomID).
fn random_id() -> String {
    let mut b = [0u8; 32];
    unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, b.len(), 0) };
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The partial line being built on one stream: its id, next ordinal, first time.
struct Pending {
    buf: Vec<u8>,
    partial: Option<(String, u32, i64, u32)>,
}

/// The copier plus the drivers it feeds.
pub struct Logger {
    drivers: Vec<Box<dyn Driver>>,
    pending: [Pending; 2],
    cri: Option<cri::Cri>,
}

fn opt<'a>(args: &'a Args, key: &str) -> Option<&'a str> {
    args.log_opts.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn flag(args: &Args, key: &str) -> bool {
    opt(args, key).is_some_and(|v| v == "true" || v == "1")
}

impl Logger {
    /// The drivers `args` asks for; None when nothing is to be kept (`none`,
    /// or no log at all). The error is dockerd's "failed to initialize logging
    /// driver" cause.
    pub fn open(args: &Args) -> Result<Option<Logger>, String> {
        let mut drivers: Vec<Box<dyn Driver>> = Vec::new();
        let path = args.log.clone();
        let file = |p: PathBuf, compress: bool| {
            rotate::RotatingFile::open(p, args.log_max_size, args.log_max_file, compress).map_err(|e| e.to_string())
        };
        match args.log_driver.as_str() {
            "none" => {}
            "cri" => {
                let p = path.ok_or("the cri driver needs a log path")?;
                let max = match opt(args, "max-line") {
                    Some(v) => v.parse().map_err(|_| format!("invalid max-line: {v}"))?,
                    None => cri::DEFAULT_MAX_LINE,
                };
                let c = cri::Cri::open(p, max)?;
                let mut l = Logger::new(Vec::new());
                l.cri = Some(c);
                return Ok(Some(l));
            }
            "json-file" => {
                if let Some(p) = path {
                    let attrs = opt(args, "attrs").map(|s| s.to_string());
                    drivers.push(Box::new(jsonfile::JsonFile::new(file(p, flag(args, "compress"))?, attrs)));
                }
            }
            "local" => {
                let p = path.ok_or("the local driver needs a log path")?;
                drivers.push(Box::new(local::Local::new(file(p, flag(args, "compress"))?)));
            }
            "journald" => {
                let fields = args.log_opts.iter().filter(|(k, _)| k == "field").filter_map(|(_, v)| {
                    v.split_once('=').map(|(a, b)| (a.to_string(), b.to_string()))
                });
                drivers.push(Box::new(journald::Journald::open(opt(args, "socket").unwrap_or(journald::SOCKET), fields.collect())?));
            }
            "syslog" => {
                let prio: u8 = opt(args, "facility").and_then(|f| f.parse().ok()).unwrap_or(3 << 3);
                drivers.push(Box::new(syslog::Syslog::open(
                    opt(args, "address").unwrap_or(""),
                    prio,
                    opt(args, "format").unwrap_or(""),
                    opt(args, "tag").unwrap_or(&args.id),
                )?));
            }
            d => return Err(format!("logger: no log driver named '{d}' is registered")),
        }
        if let Some(c) = opt(args, "cache") {
            let size = opt(args, "cache-max-size").and_then(|v| v.parse().ok()).unwrap_or(local::DEFAULT_MAX_SIZE);
            let files = opt(args, "cache-max-file").and_then(|v| v.parse().ok()).unwrap_or(local::DEFAULT_MAX_FILE);
            let compress = opt(args, "cache-compress").is_none_or(|v| v == "true");
            let f = rotate::RotatingFile::open(PathBuf::from(c), size, files, compress).map_err(|e| format!("error initializing local log cache driver: {e}"))?;
            drivers.push(Box::new(local::Local::new(f)));
        }
        if drivers.is_empty() {
            return Ok(None);
        }
        Ok(Some(Logger::new(drivers)))
    }

    pub fn new(drivers: Vec<Box<dyn Driver>>) -> Logger {
        let p = || Pending { buf: Vec::new(), partial: None };
        Logger { drivers, pending: [p(), p()], cri: None }
    }

    /// Close the log file and open the one now at its path (kubelet's
    /// ReopenContainerLog, after it renamed the file); only `cri` can.
    pub fn reopen(&mut self) -> Result<(), String> {
        match self.cri.as_mut() {
            Some(c) => c.reopen(),
            None => Err("the container's log driver can't reopen its file".into()),
        }
    }

    /// Feed output of stream 0 (stdout) or 1 (stderr); whole lines (and full
    /// 16 KiB buffers) become messages.
    pub fn write(&mut self, stream: usize, data: &[u8]) {
        if let Some(c) = self.cri.as_mut() {
            return c.write(stream, data);
        }
        self.pending[stream].buf.extend_from_slice(data);
        let (secs, nanos) = now();
        loop {
            let buf = &self.pending[stream].buf;
            match buf.iter().position(|b| *b == b'\n') {
                Some(i) if i < MAX_LINE => {
                    let line: Vec<u8> = self.pending[stream].buf.drain(..i + 1).collect();
                    self.emit(stream, &line[..i], secs, nanos, false);
                }
                _ if buf.len() >= MAX_LINE => {
                    let line: Vec<u8> = self.pending[stream].buf.drain(..MAX_LINE).collect();
                    self.emit(stream, &line, secs, nanos, true);
                }
                _ => break,
            }
        }
    }

    /// The end of the output: what is left becomes a partial message, as
    /// dockerd's copier logs it at EOF.
    pub fn flush(&mut self) {
        if let Some(c) = self.cri.as_mut() {
            return c.flush();
        }
        let (secs, nanos) = now();
        for s in 0..2 {
            if !self.pending[s].buf.is_empty() {
                let line = std::mem::take(&mut self.pending[s].buf);
                self.emit(s, &line, secs, nanos, true);
            }
        }
    }

    fn emit(&mut self, stream: usize, line: &[u8], secs: i64, nanos: u32, partial: bool) {
        let p = &mut self.pending[stream];
        let (meta, secs, nanos) = match (partial, p.partial.take()) {
            (true, None) => {
                let id = random_id();
                p.partial = Some((id.clone(), 2, secs, nanos));
                (Some(Partial { id, ordinal: 1, last: false }), secs, nanos)
            }
            (true, Some((id, n, s, ns))) => {
                p.partial = Some((id.clone(), n + 1, s, ns));
                (Some(Partial { id, ordinal: n, last: false }), s, ns)
            }
            (false, Some((id, n, s, ns))) => (Some(Partial { id, ordinal: n, last: true }), s, ns),
            (false, None) => (None, secs, nanos),
        };
        let m = Message { source: if stream == 0 { "stdout" } else { "stderr" }, line, secs, nanos, partial: meta };
        for d in self.drivers.iter_mut() {
            d.log(&m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    type Kept = Vec<(String, Vec<u8>, Option<Partial>)>;
    struct Keep(Rc<RefCell<Kept>>);
    impl Driver for Keep {
        fn log(&mut self, m: &Message) {
            self.0.borrow_mut().push((m.source.to_string(), m.line.to_vec(), m.partial.clone()));
        }
    }

    #[test]
    fn copier_cuts_lines_and_partials() {
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut l = Logger::new(vec![Box::new(Keep(got.clone()))]);
        l.write(0, b"a\nb");
        l.write(0, b"c\n");
        l.write(1, &vec![b'x'; MAX_LINE + 3]);
        l.write(1, b"\n");
        l.write(0, b"tail");
        l.flush();
        let g = got.borrow();
        assert_eq!(g.len(), 5);
        assert_eq!((g[0].0.as_str(), g[0].1.as_slice(), &g[0].2), ("stdout", &b"a"[..], &None));
        assert_eq!(g[1].1, b"bc");
        let p1 = g[2].2.clone().unwrap();
        assert_eq!((g[2].1.len(), p1.ordinal, p1.last), (MAX_LINE, 1, false));
        let p2 = g[3].2.clone().unwrap();
        assert_eq!((g[3].1.as_slice(), p2.ordinal, p2.last, p2.id.len()), (&b"xxx"[..], 2, true, 64));
        assert_eq!(p1.id, p2.id);
        let p3 = g[4].2.clone().unwrap();
        assert_eq!((g[4].1.as_slice(), p3.ordinal, p3.last), (&b"tail"[..], 1, false));
    }
}
