//! One entry's metadata as extraction applies it: owner, mode and times from
//! the header, with PAX overrides (`mtime`, `atime`, `SCHILY.xattr.*`) and
//! the GNU sparse records (`GNU.sparse.*`) that `sparse` needs.

use super::tar_err;
use crate::error::{show, Error, Result};
use rustix::fs::Timespec;
use std::io::Read;

/// Metadata of one entry, with PAX overrides applied.
pub(super) struct Meta {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
    pub(super) mtime: Timespec,
    pub(super) atime: Timespec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) sparse: Sparse,
}

#[derive(Default)]
pub(super) struct Sparse {
    /// PAX sparse formats (GNU.sparse.*): the real name and size, and the
    /// map (0.0/0.1 in the records; 1.0 at the start of the data).
    pub(super) name: Option<Vec<u8>>,
    pub(super) real_size: Option<u64>,
    pub(super) major: Option<u64>,
    pub(super) minor: Option<u64>,
    pub(super) map: Vec<u64>,
}

impl Sparse {
    pub(super) fn is_pax_sparse(&self) -> bool {
        self.real_size.is_some() && (self.major.is_some() || !self.map.is_empty() || self.name.is_some())
    }
    pub(super) fn is_v1(&self) -> bool {
        self.major == Some(1) && self.minor == Some(0)
    }
}

pub(super) fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (sec, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let sec: i64 = if sec.is_empty() { 0 } else { sec.parse().ok()? };
    let mut nsec: i64 = 0;
    let digits: Vec<u8> = frac.bytes().take(9).collect();
    if !digits.iter().all(|d| d.is_ascii_digit()) || !frac.bytes().all(|d| d.is_ascii_digit()) {
        return None;
    }
    for i in 0..9 {
        nsec = nsec * 10 + digits.get(i).map(|d| (d - b'0') as i64).unwrap_or(0);
    }
    let (sec, nsec) = if neg {
        if nsec > 0 {
            (-sec - 1, 1_000_000_000 - nsec)
        } else {
            (-sec, 0)
        }
    } else {
        (sec, nsec)
    };
    Some(Timespec { tv_sec: sec, tv_nsec: nsec as _ })
}

/// Docker's `boundTime`: times before the epoch (or absurdly far) become the epoch.
fn bound(t: Timespec) -> Timespec {
    if t.tv_sec < 0 || t.tv_sec > (1i64 << 33) * 4 {
        Timespec { tv_sec: 0, tv_nsec: 0 }
    } else {
        t
    }
}

fn later(a: Timespec, b: Timespec) -> Timespec {
    if (a.tv_sec, a.tv_nsec) > (b.tv_sec, b.tv_nsec) {
        a
    } else {
        b
    }
}

pub(super) fn read_meta<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Meta> {
    let h = e.header();
    let what = || show(&e.path_bytes());
    // Empty (all NUL/space) numeric fields read as 0, as Go's and Python's
    // tar readers do; anything else unparsable is corrupt.
    let old = h.as_old();
    let num = |r: std::io::Result<u64>, raw: &[u8], field: &str| -> Result<u64> {
        match r {
            Ok(v) => Ok(v),
            Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
            Err(_) => Err(Error::corrupt(format!("{}: invalid {field} field", what()))),
        }
    };
    let mode = num(h.mode().map(u64::from), &old.mode, "mode")? as u32 & 0o7777;
    let uid = num(h.uid(), &old.uid, "uid")?;
    let gid = num(h.gid(), &old.gid, "gid")?;
    if uid > u32::MAX as u64 - 1 || gid > u32::MAX as u64 - 1 {
        return Err(Error::corrupt(format!("{}: uid/gid out of range", what())));
    }
    let hm = num(h.mtime(), &old.mtime, "mtime")?;
    let mut m = Meta {
        uid: uid as u32,
        gid: gid as u32,
        mode,
        mtime: Timespec { tv_sec: hm.min(i64::MAX as u64) as i64, tv_nsec: 0 },
        atime: Timespec { tv_sec: 0, tv_nsec: 0 },
        xattrs: Vec::new(),
        sparse: Sparse::default(),
    };
    let mut bad = None;
    if let Some(exts) = e.pax_extensions().map_err(tar_err)? {
        for ext in exts {
            let ext = ext.map_err(tar_err)?;
            let k = ext.key_bytes();
            let v = ext.value_bytes();
            match k {
                b"mtime" => {
                    m.mtime = parse_pax_time(v).ok_or_else(|| Error::corrupt("invalid PAX mtime"))?;
                }
                b"atime" => {
                    if let Some(t) = parse_pax_time(v) {
                        m.atime = t;
                    }
                }
                // The tar reader falls back to the header's numbers when a
                // PAX one doesn't parse; Go's refuses the archive: so do we.
                b"size" | b"uid" | b"gid" if parse_u64(v).is_none() => {
                    bad = Some(format!("invalid PAX {} {:?}", String::from_utf8_lossy(k), String::from_utf8_lossy(v)));
                    break;
                }
                b"GNU.sparse.name" => m.sparse.name = Some(v.to_vec()),
                b"GNU.sparse.realsize" | b"GNU.sparse.size" => m.sparse.real_size = parse_u64(v),
                b"GNU.sparse.major" => m.sparse.major = parse_u64(v),
                b"GNU.sparse.minor" => m.sparse.minor = parse_u64(v),
                b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                    m.sparse.map.push(parse_u64(v).ok_or_else(|| Error::corrupt("invalid PAX sparse map"))?)
                }
                b"GNU.sparse.map" => {
                    for part in v.split(|&b| b == b',') {
                        m.sparse.map.push(parse_u64(part).ok_or_else(|| Error::corrupt("invalid PAX sparse map"))?);
                    }
                }
                _ => {
                    if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                        if !name.is_empty() {
                            m.xattrs.push((name.to_vec(), v.to_vec()));
                        }
                    }
                }
            }
        }
    }
    if let Some(msg) = bad {
        // named only now: the entry's path can't be read while its PAX records are
        return Err(Error::corrupt(format!("{}: {msg}", show(&e.path_bytes()))));
    }
    m.mtime = bound(m.mtime);
    m.atime = later(bound(m.atime), m.mtime);
    Ok(m)
}

pub(super) fn parse_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}
