//! Docker's `syslog` log driver, with the message formats of the syslog
//! library dockerd uses (srslog), each message ending in a newline:
//!
//! - default (`syslog-format` unset): `<PRI>Jan  2 15:04:05 TAG[PID]: MSG`
//! - `rfc3164`: `<PRI>Jan  2 15:04:05 HOST TAG[PID]: MSG`
//! - `rfc5424`: `<PRI>1 2006-01-02T15:04:05Z07:00 HOST TAG PID TAG - MSG`
//! - `rfc5424micro`: the same with microseconds.
//!
//! PRI is the facility (the daemon sends it shifted: daemon = 24) plus 6 for
//! stdout or 3 for stderr; times are local; PID is the shim's (dockerd's
//! own in dockerd). `syslog-address` is `unix://`, `unixgram://`, `tcp://`
//! or `udp://` (numeric: the daemon resolves names); unset, the local
//! syslog socket (/dev/log...). Empty lines
//! are not sent. A failed write reconnects once and tries again.

use super::{Driver, Message};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};

enum Conn {
    Stream(Box<dyn Write>),
    UnixGram(UnixDatagram),
    Udp(UdpSocket),
}

pub struct Syslog {
    proto: String,
    addr: String,
    conn: Option<Conn>,
    facility: u8,
    format: String,
    tag: String,
    hostname: String,
    pid: u32,
}

/// `addr` for tcp and udp is numeric (`1.2.3.4:514`, `[::1]:514`): the daemon
/// resolves names, as the static shim must not call NSS (getaddrinfo).
fn connect(proto: &str, addr: &str) -> std::io::Result<Conn> {
    let inet = || addr.parse::<SocketAddr>().map_err(|_| std::io::Error::other(format!("not a numeric address: {addr}")));
    Ok(match proto {
        "unix" => Conn::Stream(Box::new(UnixStream::connect(addr)?)),
        "unixgram" => {
            let s = UnixDatagram::unbound()?;
            s.connect(addr)?;
            Conn::UnixGram(s)
        }
        "tcp" => Conn::Stream(Box::new(TcpStream::connect(inet()?)?)),
        "udp" => {
            let to = inet()?;
            let any: SocketAddr = if to.is_ipv6() { SocketAddr::from(([0u16; 8], 0)) } else { SocketAddr::from(([0u8; 4], 0)) };
            let s = UdpSocket::bind(any)?;
            s.connect(to)?;
            Conn::Udp(s)
        }
        p => return Err(std::io::Error::other(format!("unsupported syslog protocol {p}"))),
    })
}

/// srslog's unixSyslog: the first local socket that takes a connection.
fn local() -> Result<(String, String, Conn), String> {
    for path in ["/dev/log", "/var/run/syslog", "/var/run/log"] {
        for proto in ["unixgram", "unix"] {
            if let Ok(c) = connect(proto, path) {
                return Ok((proto.into(), path.into(), c));
            }
        }
    }
    Err("Unix syslog delivery error".into())
}

fn hostname() -> String {
    let mut b = [0u8; 256];
    unsafe { libc::gethostname(b.as_mut_ptr() as *mut libc::c_char, b.len()) };
    let n = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// Local broken-down time and its UTC offset in seconds.
fn local_time(secs: i64) -> (libc::tm, i64) {
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t = secs as libc::time_t;
    unsafe { libc::localtime_r(&t, &mut tm) };
    let off = tm.tm_gmtoff;
    (tm, off)
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Go's time.Stamp: `Jan _2 15:04:05`.
pub fn stamp(tm: &libc::tm) -> String {
    format!("{} {:>2} {:02}:{:02}:{:02}", MONTHS[tm.tm_mon as usize % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// Go's RFC 3339 (`micro`: six fraction digits), `Z` for UTC.
pub fn rfc3339(tm: &libc::tm, off: i64, nanos: u32, micro: bool) -> String {
    let frac = if micro { format!(".{:06}", nanos / 1000) } else { String::new() };
    let zone = if off == 0 {
        "Z".to_string()
    } else {
        let a = off.abs();
        format!("{}{:02}:{:02}", if off < 0 { '-' } else { '+' }, a / 3600, a / 60 % 60)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{zone}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The message as it goes on the wire.
#[allow(clippy::too_many_arguments)]
pub fn format(format: &str, pri: u8, tm: &libc::tm, off: i64, nanos: u32, host: &str, tag: &str, pid: u32, content: &[u8]) -> Vec<u8> {
    let head = match format {
        "rfc3164" => format!("<{pri}>{} {host} {tag}[{pid}]: ", stamp(tm)),
        "rfc5424" | "rfc5424micro" => {
            format!("<{pri}>1 {} {host} {tag} {pid} {tag} - ", rfc3339(tm, off, nanos, format == "rfc5424micro"))
        }
        _ => format!("<{pri}>{} {tag}[{pid}]: ", stamp(tm)),
    };
    let mut out = head.into_bytes();
    out.extend_from_slice(content);
    if !content.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

impl Syslog {
    pub fn open(address: &str, facility: u8, format: &str, tag: &str) -> Result<Syslog, String> {
        let (proto, addr, conn) = if address.is_empty() {
            local()?
        } else {
            let (p, a) = address.split_once("://").ok_or_else(|| format!("syslog-address should be in form proto://address, got {address}"))?;
            if p == "tcp+tls" {
                return Err("syslog over TLS (tcp+tls) is not supported by Dockyard".into());
            }
            let c = connect(p, a).map_err(|e| format!("dial {p} {a}: {e}"))?;
            (p.to_string(), a.to_string(), c)
        };
        Ok(Syslog { proto, addr, conn: Some(conn), facility, format: format.into(), tag: tag.into(), hostname: hostname(), pid: std::process::id() })
    }

    fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(connect(&self.proto, &self.addr)?);
        }
        let r = match self.conn.as_mut().unwrap() {
            Conn::Stream(w) => w.write_all(data),
            Conn::UnixGram(s) => s.send(data).map(|_| ()),
            Conn::Udp(s) => s.send(data).map(|_| ()),
        };
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

impl Driver for Syslog {
    fn log(&mut self, m: &Message) {
        if m.line.is_empty() {
            return;
        }
        let pri = self.facility | if m.source == "stderr" { 3 } else { 6 };
        let (tm, off) = local_time(m.secs);
        let data = format(&self.format, pri, &tm, off, m.nanos, &self.hostname, &self.tag, self.pid, m.line);
        if self.send(&data).is_err() {
            let _ = self.send(&data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm() -> libc::tm {
        let mut t: libc::tm = unsafe { std::mem::zeroed() };
        (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec) = (126, 0, 2, 3, 4, 5);
        t
    }

    #[test]
    fn formats() {
        let t = tm();
        assert_eq!(format("", 30, &t, 0, 0, "h", "abc", 7, b"hi"), b"<30>Jan  2 03:04:05 abc[7]: hi\n");
        assert_eq!(format("rfc3164", 27, &t, 0, 0, "h", "abc", 7, b"hi"), b"<27>Jan  2 03:04:05 h abc[7]: hi\n");
        assert_eq!(format("rfc5424", 30, &t, 3600, 0, "h", "abc", 7, b"hi"), b"<30>1 2026-01-02T03:04:05+01:00 h abc 7 abc - hi\n");
        assert_eq!(format("rfc5424micro", 30, &t, 0, 123_456_789, "h", "t", 7, b"x"), b"<30>1 2026-01-02T03:04:05.123456Z h t 7 t - x\n");
    }

    #[test]
    fn unixgram_delivery() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.sock");
        let srv = UnixDatagram::bind(&p).unwrap();
        let mut s = Syslog::open(&format!("unixgram://{}", p.display()), 3 << 3, "rfc5424", "tag").unwrap();
        s.log(&Message { source: "stderr", line: b"boom", secs: 0, nanos: 0, partial: None });
        s.log(&Message { source: "stdout", line: b"", secs: 0, nanos: 0, partial: None });
        let mut b = [0u8; 512];
        let n = srv.recv(&mut b).unwrap();
        let got = String::from_utf8_lossy(&b[..n]).into_owned();
        assert!(got.starts_with("<27>1 ") && got.ends_with(" tag - boom\n"), "{got}");
        srv.set_nonblocking(true).unwrap();
        assert!(srv.recv(&mut b).is_err());
    }
}
