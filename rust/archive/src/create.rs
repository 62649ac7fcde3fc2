//! Layer creation: a directory (or the difference between two) → a tar
//! stream, optionally gzip/zstd-compressed, with its digest and diff ID.
//!
//! The output follows what Docker's archive package writes (Go's
//! `archive/tar` in PAX format): entries in lexical walk order, no root
//! entry, directory names ending in `/`, plain ustar headers with PAX
//! records only when needed (long or non-ASCII names, big ids/sizes,
//! `SCHILY.xattr.*`), mtimes truncated to seconds, no atime/ctime, hardlinks
//! by (dev, inode) pointing at the first name written, sockets skipped, two
//! zero blocks at the end. Unlike Docker, user/group names are left empty
//! (no NSS lookups) and all xattrs except `security.selinux` are kept.
//!
//! `overlay_upper`: 0/0 character devices become `.wh.<name>` (empty
//! regular file, mode 0600, like moby's overlay converter), directories with
//! `trusted.overlay.opaque=y` get a `.wh..wh..opq` entry right after them,
//! and overlayfs' own `trusted.overlay.*` xattrs are not written (escaped
//! `trusted.overlay.overlay.*` ones are written unescaped).
//!
//! `parent_root`: only the changes from the parent tree to `root` (Docker's
//! naive diff for vfs/btrfs): added entries, entries whose type, mode,
//! owner, device, symlink target or — for non-directories — size/mtime
//! differ, the directories containing changes, and `.wh.<name>` for deleted
//! names (mode 0, owner 0:0, the parent directory's mtime).

use crate::error::{show, Ctx, Error, Result};
use crate::extract::{WH_OPAQUE, WH_PREFIX};
use crate::fsops::{self, join, list_dir};
use crate::{Compression, LayerInfo};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};

pub struct CreateOptions {
    pub compression: Compression,
    pub overlay_upper: bool,
    pub parent_root: Option<PathBuf>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions { compression: Compression::None, overlay_upper: false, parent_root: None }
    }
}

const OUT_CHUNK: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Output side: tar bytes → diff ID hash → (compressor thread) → digest → out

/// Counts and hashes what passes through.
struct HashW<W: Write> {
    inner: W,
    h: Sha256,
    n: u64,
}

impl<W: Write> Write for HashW<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.h.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The tar byte stream: buffered, hashed (diff ID), handed on in big chunks.
struct TarSink<'a> {
    buf: Vec<u8>,
    h: Sha256,
    n: u64,
    next: &'a mut dyn FnMut(Vec<u8>) -> io::Result<()>,
}

impl TarSink<'_> {
    fn push(&mut self, data: &[u8]) -> io::Result<()> {
        let mut data = data;
        while !data.is_empty() {
            let room = OUT_CHUNK - self.buf.len();
            let k = room.min(data.len());
            self.buf.extend_from_slice(&data[..k]);
            data = &data[k..];
            if self.buf.len() == OUT_CHUNK {
                self.ship()?;
            }
        }
        Ok(())
    }
    fn ship(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_CHUNK));
        self.h.update(&b);
        self.n += b.len() as u64;
        (self.next)(b)
    }
}

/// `level`: gzip 0-9 (default 6), zstd 1-22 (default 3).
fn compress_thread<W: Write>(rx: Receiver<Vec<u8>>, out: W, c: Compression, level: Option<u32>) -> Result<(String, u64)> {
    let hw = HashW { inner: io::BufWriter::with_capacity(OUT_CHUNK, out), h: Sha256::new(), n: 0 };
    let werr = |e: io::Error| Error::io("write layer", e);
    let hw = match c {
        Compression::None => {
            let mut hw = hw;
            for b in rx {
                hw.write_all(&b).map_err(werr)?;
            }
            hw
        }
        Compression::Gzip => {
            let lvl = level.map(|l| flate2::Compression::new(l.min(9))).unwrap_or_default();
            let mut enc = flate2::write::GzEncoder::new(hw, lvl);
            for b in rx {
                enc.write_all(&b).map_err(werr)?;
            }
            enc.finish().map_err(werr)?
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(hw, level.map(|l| l.clamp(1, 22) as i32).unwrap_or(3)).map_err(werr)?;
            for b in rx {
                enc.write_all(&b).map_err(werr)?;
            }
            enc.finish().map_err(werr)?
        }
    };
    let HashW { mut inner, h, n } = hw;
    inner.flush().map_err(werr)?;
    Ok((crate::digest::finish(h), n))
}

/// A writer that ships full chunks to the compression thread.
struct ChunkTx {
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl ChunkTx {
    fn ship(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_CHUNK));
        match &self.tx {
            Some(tx) => tx.send(b).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "compressor stopped")),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "compressor stopped")),
        }
    }
}

impl Write for ChunkTx {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(OUT_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == OUT_CHUNK {
            self.ship()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.ship()
    }
}

/// Run `produce` (which writes an uncompressed stream) with its output
/// compressed on a second thread into `out`. Returns what `produce` returned,
/// then the digest and length of the compressed bytes written to `out`.
pub fn compressed<W, T, F>(out: W, c: Compression, level: Option<u32>, produce: F) -> Result<(T, String, u64)>
where
    W: Write + Send,
    F: FnOnce(&mut dyn Write) -> Result<T>,
{
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let th = std::thread::Builder::new()
            .name("dockyard-compress".into())
            .spawn_scoped(s, move || compress_thread(rx, out, c, level))
            .map_err(|e| Error::io("spawn compression thread", e))?;
        let mut w = ChunkTx { buf: Vec::with_capacity(OUT_CHUNK), tx: Some(tx) };
        let res = produce(&mut w).and_then(|t| w.ship().map(|_| t).map_err(|e| Error::io("write layer", e)));
        w.tx = None;
        let comp = th.join().unwrap_or_else(|_| Err(Error::corrupt("compression thread panicked")));
        // A producer error wins over the compressor's "broken pipe".
        let t = res?;
        let (digest, n) = comp?;
        Ok((t, digest, n))
    })
}

/// Write a layer tar of `root` into `out` (which is not closed or synced).
pub fn create_layer<W: Write + Send>(root: &Path, out: W, opts: &CreateOptions) -> Result<LayerInfo> {
    fsops::raise_nofile_limit();
    let open_dir = |p: &Path| {
        rfs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ctx(|| format!("open {}", p.display()))
    };
    let rootfd = open_dir(root)?;
    let parentfd = match &opts.parent_root {
        Some(p) => Some(open_dir(p)?),
        None => None,
    };
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let c = opts.compression;
        let th = std::thread::Builder::new()
            .name("dockyard-compress".into())
            .spawn_scoped(s, move || compress_thread(rx, out, c, None))
            .map_err(|e| Error::io("spawn compression thread", e))?;
        let mut send = move |b: Vec<u8>| tx.send(b).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "compressor stopped"));
        let mut sink = TarSink { buf: Vec::with_capacity(OUT_CHUNK), h: Sha256::new(), n: 0, next: &mut send };
        let res = (|| -> Result<()> {
            let mut w = Walker {
                sink: &mut sink,
                overlay_upper: opts.overlay_upper,
                seen: HashMap::new(),
                pending: Vec::new(),
                buf: vec![0u8; OUT_CHUNK],
            };
            w.walk(rootfd.as_fd(), parentfd.as_ref().map(|f| f.as_fd()), b"")?;
            // End of archive: two zero blocks (Go's tar.Writer.Close).
            w.sink.push(&[0u8; 1024]).map_err(|e| Error::io("write layer", e))?;
            w.sink.ship().map_err(|e| Error::io("write layer", e))?;
            Ok(())
        })();
        let (diff_id, size) = (crate::digest::finish(std::mem::take(&mut sink.h)), sink.n);
        drop(sink);
        drop(send);
        let comp = th.join().unwrap_or_else(|_| Err(Error::corrupt("compression thread panicked")));
        // A walker error wins over the compressor's "broken pipe".
        res?;
        let (digest, csize) = comp?;
        Ok(LayerInfo { digest, diff_id, size, compressed_size: csize, compression: opts.compression })
    })
}

// ---------------------------------------------------------------------------
// Tar headers (Go archive/tar, FormatPAX)

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
struct Hdr {
    name: Vec<u8>,
    link: Vec<u8>,
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    devmajor: u32,
    devminor: u32,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn header_bytes(h: &Hdr) -> Vec<u8> {
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

// ---------------------------------------------------------------------------
// The walk

fn is_fmt(st: &rfs::Stat, f: u32) -> bool {
    st.st_mode & libc::S_IFMT == f
}

/// Docker's `statDifferent` (+ symlink targets).
fn different(o: &rfs::Stat, n: &rfs::Stat) -> bool {
    if o.st_mode != n.st_mode || o.st_uid != n.st_uid || o.st_gid != n.st_gid || o.st_rdev != n.st_rdev {
        return true;
    }
    if !is_fmt(n, libc::S_IFDIR) {
        if o.st_size != n.st_size {
            return true;
        }
        let same_time = o.st_mtime == n.st_mtime
            && (o.st_mtime_nsec == n.st_mtime_nsec || o.st_mtime_nsec == 0 || n.st_mtime_nsec == 0);
        if !same_time {
            return true;
        }
    }
    false
}

struct Pending {
    rel: Vec<u8>,
    st: rfs::Stat,
    fd: OwnedFd,
}

struct Walker<'a, 'b> {
    sink: &'a mut TarSink<'b>,
    overlay_upper: bool,
    seen: HashMap<(u64, u64), Vec<u8>>,
    /// Unchanged directories above the current position whose headers are
    /// written only if something beneath them changed (diff mode).
    pending: Vec<Pending>,
    buf: Vec<u8>,
}

fn sorted_names(fd: BorrowedFd<'_>, rel: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut v = list_dir(fd).map_err(|e| Error::io(format!("list {}", show(rel)), e.into()))?;
    v.sort();
    Ok(v)
}

impl Walker<'_, '_> {
    fn out(&mut self, b: &[u8]) -> Result<()> {
        self.sink.push(b).map_err(|e| Error::io("write layer", e))
    }

    fn walk(&mut self, new: BorrowedFd<'_>, old: Option<BorrowedFd<'_>>, rel: &[u8]) -> Result<()> {
        let nn = sorted_names(new, rel)?;
        let on = match old {
            Some(o) => sorted_names(o, rel)?,
            None => Vec::new(),
        };
        let (mut i, mut j) = (0, 0);
        while i < nn.len() || j < on.len() {
            let (name, in_new, in_old) = match (nn.get(i), on.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                    (a.clone(), true, true)
                }
                (Some(a), Some(b)) if a < b => {
                    i += 1;
                    (a.clone(), true, false)
                }
                (Some(a), None) => {
                    i += 1;
                    (a.clone(), true, false)
                }
                (_, Some(b)) => {
                    j += 1;
                    (b.clone(), false, true)
                }
                (None, None) => break,
            };
            if !in_new {
                self.deleted(new, rel, &name)?;
                continue;
            }
            self.one(new, if in_old { old } else { None }, rel, &name)?;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<()> {
        let pend = std::mem::take(&mut self.pending);
        for p in &pend {
            self.dir_header(&p.rel, &p.st, p.fd.as_fd())?;
        }
        Ok(())
    }

    fn deleted(&mut self, newdir: BorrowedFd<'_>, rel: &[u8], name: &[u8]) -> Result<()> {
        self.flush_pending()?;
        let mtime = rfs::fstat(newdir).map(|s| s.st_mtime).unwrap_or(0);
        let mut wh = WH_PREFIX.to_vec();
        wh.extend_from_slice(name);
        let h = Hdr {
            name: join(rel, &wh),
            link: Vec::new(),
            typeflag: b'0',
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime,
            devmajor: 0,
            devminor: 0,
            xattrs: Vec::new(),
        };
        let b = header_bytes(&h);
        self.out(&b)
    }

    fn one(&mut self, dir: BorrowedFd<'_>, old: Option<BorrowedFd<'_>>, rel: &[u8], name: &[u8]) -> Result<()> {
        let child = join(rel, name);
        let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()), // vanished meanwhile
            Err(e) => return Err(Error::io(format!("stat {}", show(&child)), e.into())),
        };
        if is_fmt(&st, libc::S_IFSOCK) {
            return Ok(()); // Docker skips sockets
        }
        let ost = match old {
            Some(o) => rfs::statat(o, name, AtFlags::SYMLINK_NOFOLLOW).ok(),
            None => None,
        };
        let mut changed = match &ost {
            None => true,
            Some(o) => different(o, &st),
        };
        if !changed && is_fmt(&st, libc::S_IFLNK) {
            let a = rfs::readlinkat(dir, name, Vec::new()).ok();
            let b = old.and_then(|o| rfs::readlinkat(o, name, Vec::new()).ok());
            changed = a.map(|c| c.into_bytes()) != b.map(|c| c.into_bytes());
        }
        if is_fmt(&st, libc::S_IFDIR) {
            let dfd = rfs::openat(dir, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| Error::io(format!("open {}", show(&child)), e.into()))?;
            let mark = self.pending.len();
            if changed {
                self.flush_pending()?;
                self.dir_header(&child, &st, dfd.as_fd())?;
            }
            let ofd = match (&ost, old) {
                (Some(o), Some(od)) if is_fmt(o, libc::S_IFDIR) => {
                    rfs::openat(od, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).ok()
                }
                _ => None,
            };
            if changed {
                self.walk(dfd.as_fd(), ofd.as_ref().map(|f| f.as_fd()), &child)?;
            } else {
                let keep = dfd.try_clone().map_err(|e| Error::io("dup", e))?;
                self.pending.push(Pending { rel: child.clone(), st, fd: keep });
                self.walk(dfd.as_fd(), ofd.as_ref().map(|f| f.as_fd()), &child)?;
                self.pending.truncate(mark.min(self.pending.len()));
            }
            return Ok(());
        }
        if !changed {
            return Ok(());
        }
        self.flush_pending()?;
        self.non_dir(dir, name, &child, &st)
    }

    fn xattrs_of(&self, fd: Option<BorrowedFd<'_>>, dir: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, bool)> {
        let proc_p;
        let names = match fd {
            Some(f) => list_xattrs(|b| rfs::flistxattr(f, b)),
            None => {
                proc_p = fsops::proc_path(dir, name);
                list_xattrs(|b| rfs::llistxattr(&proc_p[..], b))
            }
        }
        .map_err(|e| Error::io(format!("list xattrs of {}", show(rel)), e.into()))?;
        let mut out = Vec::new();
        let mut opaque = false;
        for k in names {
            let get = |k: &[u8]| match fd {
                Some(f) => get_xattr(|b| rfs::fgetxattr(f, k, b)),
                None => get_xattr(|b| rfs::lgetxattr(&fsops::proc_path(dir, name)[..], k, b)),
            };
            if k == b"security.selinux" {
                continue;
            }
            let mut key = k.clone();
            if self.overlay_upper {
                if k == b"trusted.overlay.opaque" {
                    opaque = get(&k).ok().as_deref() == Some(b"y");
                    continue;
                }
                if let Some(rest) = k.strip_prefix(b"trusted.overlay.overlay.") {
                    key = [b"trusted.overlay.".as_slice(), rest].concat();
                } else if k.starts_with(b"trusted.overlay.") {
                    continue;
                }
            }
            let mut v = match get(&k) {
                Ok(v) => v,
                Err(Errno::NODATA) => continue,
                Err(e) => return Err(Error::io(format!("get xattr of {}", show(rel)), e.into())),
            };
            if key == b"security.capability" && v.len() > 20 && v[3] == 3 {
                // VFS_CAP_REVISION_3 → 2: the root uid means nothing elsewhere.
                v[3] = 2;
                v.truncate(20);
            }
            out.push((key, v));
        }
        out.sort();
        Ok((out, opaque))
    }

    fn dir_header(&mut self, rel: &[u8], st: &rfs::Stat, fd: BorrowedFd<'_>) -> Result<()> {
        let (xattrs, opaque) = self.xattrs_of(Some(fd), fd, b"", rel)?;
        let mut name = rel.to_vec();
        name.push(b'/');
        let h = Hdr {
            name,
            link: Vec::new(),
            typeflag: b'5',
            mode: st.st_mode & 0o7777,
            uid: st.st_uid as u64,
            gid: st.st_gid as u64,
            size: 0,
            mtime: st.st_mtime,
            devmajor: 0,
            devminor: 0,
            xattrs,
        };
        let b = header_bytes(&h);
        self.out(&b)?;
        if opaque {
            let wo = Hdr {
                name: join(rel, WH_OPAQUE),
                link: Vec::new(),
                typeflag: b'0',
                mode: st.st_mode & 0o777,
                uid: st.st_uid as u64,
                gid: st.st_gid as u64,
                size: 0,
                mtime: 0,
                devmajor: 0,
                devminor: 0,
                xattrs: Vec::new(),
            };
            let b = header_bytes(&wo);
            self.out(&b)?;
        }
        Ok(())
    }

    fn non_dir(&mut self, dir: BorrowedFd<'_>, name: &[u8], rel: &[u8], st: &rfs::Stat) -> Result<()> {
        let fmt = st.st_mode & libc::S_IFMT;
        let mut h = Hdr {
            name: rel.to_vec(),
            link: Vec::new(),
            typeflag: b'0',
            mode: st.st_mode & 0o7777,
            uid: st.st_uid as u64,
            gid: st.st_gid as u64,
            size: 0,
            mtime: st.st_mtime,
            devmajor: 0,
            devminor: 0,
            xattrs: Vec::new(),
        };
        // overlay whiteout: 0/0 char device → .wh.<name>
        if self.overlay_upper && fmt == libc::S_IFCHR && st.st_rdev == 0 {
            let (p, l) = fsops::split_parent(rel);
            let mut wh = WH_PREFIX.to_vec();
            wh.extend_from_slice(l);
            h.name = join(p, &wh);
            h.mode = 0o600;
            let b = header_bytes(&h);
            return self.out(&b);
        }
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.seen.get(&key) {
                h.typeflag = b'1';
                h.link = first.clone();
                h.xattrs = self.xattrs_of(None, dir, name, rel)?.0;
                let b = header_bytes(&h);
                return self.out(&b);
            }
            self.seen.insert(key, rel.to_vec());
        }
        match fmt {
            libc::S_IFREG => {
                let fd = match rfs::openat(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(e) => return Err(Error::io(format!("open {}", show(rel)), e.into())),
                };
                let fst = rfs::fstat(&fd).map_err(|e| Error::io(format!("stat {}", show(rel)), e.into()))?;
                h.size = fst.st_size as u64;
                h.mode = fst.st_mode & 0o7777;
                h.mtime = fst.st_mtime;
                h.uid = fst.st_uid as u64;
                h.gid = fst.st_gid as u64;
                h.xattrs = self.xattrs_of(Some(fd.as_fd()), dir, name, rel)?.0;
                let b = header_bytes(&h);
                self.out(&b)?;
                let mut f = File::from(fd);
                let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
                let mut left = h.size;
                while left > 0 {
                    let k = (left.min(self.buf.len() as u64)) as usize;
                    let n = match f.read(&mut self.buf[..k]) {
                        Ok(0) => return Err(Error::io(format!("read {}", show(rel)), io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being archived"))),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(Error::io(format!("read {}", show(rel)), e)),
                    };
                    self.sink.push(&self.buf[..n]).map_err(|e| Error::io("write layer", e))?;
                    left -= n as u64;
                }
                let pad = (512 - (h.size % 512) as usize) % 512;
                if pad > 0 {
                    self.out(&[0u8; 512][..pad])?;
                }
                return Ok(());
            }
            libc::S_IFLNK => {
                let t = rfs::readlinkat(dir, name, Vec::new()).map_err(|e| Error::io(format!("readlink {}", show(rel)), e.into()))?;
                h.typeflag = b'2';
                h.link = t.into_bytes();
            }
            libc::S_IFCHR | libc::S_IFBLK => {
                h.typeflag = if fmt == libc::S_IFCHR { b'3' } else { b'4' };
                h.devmajor = rfs::major(st.st_rdev);
                h.devminor = rfs::minor(st.st_rdev);
            }
            libc::S_IFIFO => h.typeflag = b'6',
            _ => return Ok(()),
        }
        h.xattrs = self.xattrs_of(None, dir, name, rel)?.0;
        let b = header_bytes(&h);
        self.out(&b)
    }
}

fn list_xattrs<F: Fn(&mut [u8]) -> std::result::Result<usize, Errno>>(f: F) -> std::result::Result<Vec<Vec<u8>>, Errno> {
    let mut buf = vec![0u8; 1024];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| s.to_vec()).collect());
            }
            Err(Errno::RANGE) => {
                let n = buf.len() * 4;
                if n > 1 << 24 {
                    return Err(Errno::RANGE);
                }
                buf.resize(n, 0);
            }
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
}

fn get_xattr<F: Fn(&mut [u8]) -> std::result::Result<usize, Errno>>(f: F) -> std::result::Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 256];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => {
                let n = buf.len() * 4;
                if n > 1 << 24 {
                    return Err(Errno::RANGE);
                }
                buf.resize(n, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
