//! Tar headers as Go's `archive/tar` writes them in PAX format: a plain
//! ustar header, preceded by a PAX record header only when a field doesn't
//! fit (long or non-ASCII names, big ids/sizes/times) or xattrs are set.

use crate::fsops;

fn fmt_octal(field: &mut [u8], v: u64) -> bool {
    let s = format!("{:o}", v);
    let width = field.len() - 1;
    if s.len() > width {
        return false;
    }
    let pad = width - s.len();
    for b in field.iter_mut().take(pad) {
        *b = b'0';
    }
    field[pad..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
    true
}

fn fmt_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

fn to_ascii(s: &[u8]) -> Vec<u8> {
    // Go's toASCII drops non-ASCII runes; dropping non-ASCII bytes is the
    // same for UTF-8 (and for invalid bytes, which Go sees as U+FFFD).
    s.iter().copied().filter(|b| *b < 0x80).collect()
}

fn pax_record(k: &[u8], v: &[u8]) -> Vec<u8> {
    // "%d %s=%s\n", the length counting itself.
    let body = k.len() + v.len() + 3; // ' ' '=' '\n'
    let mut n = body + 1;
    loop {
        let len = body + n.to_string().len();
        if len == n {
            break;
        }
        n = len;
    }
    let mut r = Vec::with_capacity(n);
    r.extend_from_slice(n.to_string().as_bytes());
    r.push(b' ');
    r.extend_from_slice(k);
    r.push(b'=');
    r.extend_from_slice(v);
    r.push(b'\n');
    r
}

fn set_checksum(h: &mut [u8; 512]) {
    for b in &mut h[148..156] {
        *b = b' ';
    }
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    let s = format!("{:06o}", sum);
    h[148..154].copy_from_slice(s.as_bytes());
    h[154] = 0;
    h[155] = b' ';
}

fn set_magic(h: &mut [u8; 512]) {
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
}

/// One tar entry's header fields.
#[derive(Clone)]
pub(super) struct Hdr {
    pub(super) name: Vec<u8>,
    pub(super) link: Vec<u8>,
    pub(super) typeflag: u8,
    pub(super) mode: u32,
    pub(super) uid: u64,
    pub(super) gid: u64,
    pub(super) size: u64,
    pub(super) mtime: i64,
    pub(super) devmajor: u32,
    pub(super) devminor: u32,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(super) fn header_bytes(h: &Hdr) -> Vec<u8> {
    let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if h.name.len() > 100 || !h.name.is_ascii() {
        pax.push((b"path".to_vec(), h.name.clone()));
    }
    if h.link.len() > 100 || !h.link.is_ascii() {
        pax.push((b"linkpath".to_vec(), h.link.clone()));
    }
    let mut b = [0u8; 512];
    fmt_str(&mut b[0..100], &to_ascii(&h.name));
    fmt_octal(&mut b[100..108], h.mode as u64);
    if !fmt_octal(&mut b[108..116], h.uid) {
        pax.push((b"uid".to_vec(), h.uid.to_string().into_bytes()));
        fmt_octal(&mut b[108..116], 0);
    }
    if !fmt_octal(&mut b[116..124], h.gid) {
        pax.push((b"gid".to_vec(), h.gid.to_string().into_bytes()));
        fmt_octal(&mut b[116..124], 0);
    }
    if !fmt_octal(&mut b[124..136], h.size) {
        pax.push((b"size".to_vec(), h.size.to_string().into_bytes()));
        fmt_octal(&mut b[124..136], 0);
    }
    if h.mtime < 0 || !fmt_octal(&mut b[136..148], h.mtime as u64) {
        pax.push((b"mtime".to_vec(), h.mtime.to_string().into_bytes()));
        fmt_octal(&mut b[136..148], 0);
    }
    b[156] = h.typeflag;
    fmt_str(&mut b[157..257], &to_ascii(&h.link));
    set_magic(&mut b);
    fmt_octal(&mut b[329..337], h.devmajor as u64);
    fmt_octal(&mut b[337..345], h.devminor as u64);
    for (k, v) in &h.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(k);
        pax.push((key, v.clone()));
    }
    set_checksum(&mut b);

    let mut out = Vec::with_capacity(1024);
    if !pax.is_empty() {
        pax.sort();
        let mut data = Vec::new();
        for (k, v) in &pax {
            data.extend_from_slice(&pax_record(k, v));
        }
        // Name: dir/PaxHeaders.0/file, truncated to 100, no trailing slash.
        let trimmed: &[u8] = {
            let mut n = &h.name[..];
            while n.last() == Some(&b'/') {
                n = &n[..n.len() - 1];
            }
            n
        };
        let (dir, file) = fsops::split_parent(trimmed);
        let mut pname = Vec::new();
        if !dir.is_empty() {
            pname.extend_from_slice(dir);
            pname.push(b'/');
        }
        pname.extend_from_slice(b"PaxHeaders.0/");
        pname.extend_from_slice(file);
        let mut pname = to_ascii(&pname);
        pname.truncate(100);
        while pname.last() == Some(&b'/') {
            pname.pop();
        }
        let mut p = [0u8; 512];
        fmt_str(&mut p[0..100], &pname);
        fmt_octal(&mut p[100..108], 0);
        fmt_octal(&mut p[108..116], 0);
        fmt_octal(&mut p[116..124], 0);
        fmt_octal(&mut p[124..136], data.len() as u64);
        fmt_octal(&mut p[136..148], 0);
        p[156] = b'x';
        set_magic(&mut p);
        set_checksum(&mut p);
        out.extend_from_slice(&p);
        out.extend_from_slice(&data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn pax_record_lengths() {
        assert_eq!(pax_record(b"path", b"a"), b"9 path=a\n");
        assert_eq!(pax_record(b"path", b"abc"), b"12 path=abc\n");
        let r = pax_record(b"k", &vec![b'v'; 95]);
        let n: usize = std::str::from_utf8(&r[..r.iter().position(|&b| b == b' ').unwrap()]).unwrap().parse().unwrap();
        assert_eq!(n, r.len());
    }

    #[test]
    fn octal_fields() {
        let mut f = [0u8; 8];
        assert!(fmt_octal(&mut f, 0o755));
        assert_eq!(&f, b"0000755\0");
        assert!(!fmt_octal(&mut f, 0o77777777));
    }

    #[test]
    fn header_round_trips_through_tar_crate() {
        let h = Hdr {
            name: [b"d/".as_slice(), &[b'x'; 150]].concat(),
            link: Vec::new(),
            typeflag: b'0',
            mode: 0o4755,
            uid: 3_000_000,
            gid: 5,
            size: 3,
            mtime: 1_600_000_000,
            devmajor: 0,
            devminor: 0,
            xattrs: vec![(b"user.a".to_vec(), b"b".to_vec())],
        };
        let mut data = header_bytes(&h);
        data.extend_from_slice(b"abc");
        data.resize(data.len().div_ceil(512) * 512 + 1024, 0);
        let mut ar = tar::Archive::new(&data[..]);
        let mut es = ar.entries().unwrap();
        let mut e = es.next().unwrap().unwrap();
        assert_eq!(&*e.path_bytes(), &h.name[..]);
        assert_eq!(e.header().uid().unwrap(), 3_000_000);
        assert_eq!(e.header().mode().unwrap(), 0o4755);
        let x: Vec<_> = e.pax_extensions().unwrap().unwrap().map(|r| r.unwrap().key().unwrap().to_string()).collect();
        assert!(x.contains(&"SCHILY.xattr.user.a".to_string()));
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abc");
    }
}
