//! Safe, streaming extraction of a layer tarball into a directory.
//!
//! The `tar` crate is used only to *parse* entries; every file-system change
//! is made here relative to the target's root fd (see `fsops`). The work is
//! split over two threads: one reads, hashes (digest) and decompresses; the
//! calling thread hashes the tar stream (diff ID), parses it and writes files.
//!
//! Semantics follow Docker's archive package (`Unpack` for the overlay
//! driver, `UnpackLayer` for vfs/btrfs "naive" layers):
//! - names are cleaned; a relative name climbing above the root, a hardlink
//!   target outside it, or a symlink whose target lexically climbs above it
//!   fails the whole layer (UnsafePath, "breakout");
//! - missing parent directories are made 0755;
//! - an existing path is replaced unless both it and the entry are
//!   directories (then metadata is merged);
//! - owner, then xattrs, then mode (so setuid/setgid survive), then times;
//!   directory times are set at the end, after their contents;
//! - whiteouts: see [`Whiteouts`].
//!
//! On any failure the target is emptied again (the caller passes a fresh
//! directory — or, in naive mode, a copy of the parent that it will discard).

use crate::error::{show, Ctx, Error, Result};
use crate::fsops::{self, clean_entry_name, clean_link_target, fs_err, split_parent, symlink_escapes, Root};
use crate::pipeline::{self, ChunkReader};
use crate::tarsplit::{Recorder, SplitReader};
use crate::LayerInfo;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

pub const WH_PREFIX: &[u8] = b".wh.";
pub const WH_META_PREFIX: &[u8] = b".wh..wh.";
pub const WH_OPAQUE: &[u8] = b".wh..wh..opq";

/// How whiteout entries are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// The target is an overlayfs upper dir: `.wh.x` → 0/0 char device `x`;
    /// `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory.
    Overlay,
    /// The target holds a copy of the parent layer (vfs, btrfs): `.wh.x`
    /// removes `x`; `.wh..wh..opq` removes what the directory held before
    /// this layer (entries this layer unpacked stay, wherever the marker is).
    Naive,
}

impl Whiteouts {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "overlay" | "overlay2" | "overlayfs" => Some(Whiteouts::Overlay),
            "naive" | "vfs" | "btrfs" => Some(Whiteouts::Naive),
            _ => None,
        }
    }
}

/// Extract the layer file at `src` into the existing directory `target`.
pub fn extract_file(src: &Path, target: &Path, whiteouts: Whiteouts, abort: &AtomicBool) -> Result<LayerInfo> {
    let f = File::open(src).ctx(|| format!("open layer {}", src.display()))?;
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
    extract(BufReader::with_capacity(1 << 20, f), target, whiteouts, abort)
}

/// Extract a (maybe compressed) tar stream into the existing directory
/// `target`. `abort` is polled; setting it makes this return `Aborted`.
pub fn extract<R: BufRead + Send>(src: R, target: &Path, whiteouts: Whiteouts, abort: &AtomicBool) -> Result<LayerInfo> {
    extract_inner(src, target, whiteouts, abort, false).map(|(info, _)| info)
}

/// Like [`extract`], and also returns the layer's tar-split record (see
/// [`crate::tarsplit`]), from which the exact tar stream can be rebuilt.
pub fn extract_with_split<R: BufRead + Send>(
    src: R,
    target: &Path,
    whiteouts: Whiteouts,
    abort: &AtomicBool,
) -> Result<(LayerInfo, Vec<u8>)> {
    extract_inner(src, target, whiteouts, abort, true).map(|(info, split)| (info, split.unwrap_or_default()))
}

/// [`extract_file`] with a tar-split record.
pub fn extract_file_with_split(src: &Path, target: &Path, whiteouts: Whiteouts, abort: &AtomicBool) -> Result<(LayerInfo, Vec<u8>)> {
    let f = File::open(src).ctx(|| format!("open layer {}", src.display()))?;
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
    extract_with_split(BufReader::with_capacity(1 << 20, f), target, whiteouts, abort)
}

fn extract_inner<R: BufRead + Send>(
    src: R,
    target: &Path,
    whiteouts: Whiteouts,
    abort: &AtomicBool,
    record_split: bool,
) -> Result<(LayerInfo, Option<Vec<u8>>)> {
    fsops::raise_nofile_limit();
    let mut root = Root::open(target)?;
    let (tx, pool_rx, reader) = pipeline::channel(true);
    let broken = reader.broken_flag.clone();
    let result = std::thread::scope(|s| {
        let dec = std::thread::Builder::new()
            .name("dockyard-inflate".into())
            .spawn_scoped(s, move || pipeline::decompress_into(src, tx, pool_rx, abort))
            .map_err(|e| Error::io("spawn decompression thread", e))?;
        let mut ex = Extractor::new(&mut root, whiteouts, abort);
        if record_split {
            ex.split = Some(Rc::new(RefCell::new(Recorder::new())));
        }
        let res = ex.run(reader);
        let split = ex.split.take();
        if res.is_err() {
            // Stop the reading side promptly (a streaming source polls this).
            abort.store(true, Ordering::Relaxed);
        }
        let src_res = dec.join().unwrap_or_else(|_| Err(Error::corrupt("decompression thread panicked")));
        match (res, src_res) {
            (Ok((size, diff_id)), Ok(sum)) => {
                let split = match split {
                    Some(rec) => Some(
                        Rc::try_unwrap(rec)
                            .map_err(|_| Error::corrupt("tar-split recorder still shared"))?
                            .into_inner()
                            .finish()?,
                    ),
                    None => None,
                };
                Ok((
                    LayerInfo {
                        digest: sum.digest,
                        diff_id,
                        size,
                        compressed_size: sum.compressed_size,
                        compression: sum.compression,
                    },
                    split,
                ))
            }
            // A tar error caused by the decompressor going away: its own error says why.
            (Err(ex), Err(de)) => {
                if broken.load(Ordering::Relaxed) && !is_stopped(&de) {
                    Err(de)
                } else {
                    Err(ex)
                }
            }
            (Err(ex), Ok(_)) => Err(ex),
            (Ok(_), Err(de)) => Err(de),
        }
    });
    if std::env::var_os("DOCKYARD_ARCHIVE_TRACE").is_some() {
        eprintln!(
            "archive: decompressor waited {} ms on a full queue, extractor {} ms on an empty one",
            pipeline::WAIT_SEND.swap(0, Ordering::Relaxed) / 1000,
            pipeline::WAIT_RECV.swap(0, Ordering::Relaxed) / 1000
        );
    }
    if result.is_err() {
        // Leave no partial layer behind.
        let _ = fsops::empty_dir(root.fd());
    }
    result
}

fn is_stopped(e: &Error) -> bool {
    matches!(e, Error::Corrupt(m) if m == "extraction stopped")
}

fn tar_err(e: std::io::Error) -> Error {
    Error::corrupt(format!("invalid tar stream: {e}"))
}

/// Metadata of one entry, with PAX overrides applied.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
    atime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: Sparse,
}

#[derive(Default)]
struct Sparse {
    /// PAX sparse formats (GNU.sparse.*): the real name and size, and the
    /// map (0.0/0.1 in the records; 1.0 at the start of the data).
    name: Option<Vec<u8>>,
    real_size: Option<u64>,
    major: Option<u64>,
    minor: Option<u64>,
    map: Vec<u64>,
}

impl Sparse {
    fn is_pax_sparse(&self) -> bool {
        self.real_size.is_some() && (self.major.is_some() || !self.map.is_empty() || self.name.is_some())
    }
    fn is_v1(&self) -> bool {
        self.major == Some(1) && self.minor == Some(0)
    }
}

fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
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

fn read_meta<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Meta> {
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
    m.mtime = bound(m.mtime);
    m.atime = later(bound(m.atime), m.mtime);
    Ok(m)
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

struct Extractor<'a> {
    root: &'a mut Root,
    mode: Whiteouts,
    abort: &'a AtomicBool,
    /// Directories whose times are set at the end: (path, atime, mtime).
    dirs: Vec<(Vec<u8>, Timespec, Timespec)>,
    /// Naive mode: paths this layer unpacked, and their ancestors, which an
    /// opaque marker must keep.
    unpacked: HashSet<Vec<u8>>,
    ancestors: HashSet<Vec<u8>>,
    buf: Vec<u8>,
    userns: bool,
    /// Records the non-content bytes of the stream when a tar-split is asked for.
    split: Option<Rc<RefCell<Recorder>>>,
}

impl<'a> Extractor<'a> {
    fn new(root: &'a mut Root, mode: Whiteouts, abort: &'a AtomicBool) -> Self {
        Extractor {
            root,
            mode,
            abort,
            dirs: Vec::new(),
            unpacked: HashSet::new(),
            ancestors: HashSet::new(),
            buf: vec![0u8; 1 << 20],
            userns: fsops::in_user_ns(),
            split: None,
        }
    }

    /// Returns (tar stream size, diff ID).
    fn run(&mut self, reader: ChunkReader) -> Result<(u64, String)> {
        let mut ar = tar::Archive::new(SplitReader::new(reader, self.split.clone()));
        {
            let entries = ar.entries().map_err(tar_err)?;
            for e in entries {
                if self.abort.load(Ordering::Relaxed) {
                    return Err(Error::Aborted);
                }
                let mut e = e.map_err(tar_err)?;
                self.entry(&mut e)?;
            }
        }
        let mut sreader = ar.into_inner();
        if sreader.inner.broken {
            return Err(Error::corrupt("decompression failed"));
        }
        if sreader.inner.eof && sreader.inner.count > 0 {
            return Err(Error::corrupt("truncated tar stream: no end-of-archive marker"));
        }
        if self.split.is_some() {
            // Trailing bytes belong to the stream (and its diff ID): record them.
            std::io::copy(&mut sreader, &mut std::io::sink()).map_err(tar_err)?;
        }
        let mut reader = sreader.inner;
        // Trailing padding (and anything else) is part of the diff ID.
        reader.drain().map_err(tar_err)?;
        if reader.broken {
            return Err(Error::corrupt("decompression failed"));
        }
        self.finish_dirs()?;
        let diff_id = reader.diff_id().unwrap_or_default();
        Ok((reader.count, diff_id))
    }

    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (name, at, mt) in dirs {
            let ts = Timestamps { last_access: at, last_modification: mt };
            let (p, l) = split_parent(&name);
            if name.is_empty() {
                rfs::futimens(self.root.fd(), &ts).ctx(|| "set times of /".to_string())?;
                continue;
            }
            let Some(pfd) = self.root.dir(p, false)? else { continue };
            match rfs::utimensat(&*pfd, l, &ts, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(fs_err(e, || format!("set times of {}", show(&name)))),
            }
        }
        Ok(())
    }

    fn mark_unpacked(&mut self, name: &[u8]) {
        if self.mode != Whiteouts::Naive {
            return;
        }
        self.unpacked.insert(name.to_vec());
        let mut p = name;
        while let Some(i) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..i];
            if !self.ancestors.insert(p.to_vec()) {
                break;
            }
        }
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let et = e.header().entry_type();
        if et.is_pax_global_extensions() {
            return Ok(()); // ignored, like Docker
        }
        let mut meta = read_meta(e)?;
        let raw_name = match meta.sparse.name.take() {
            Some(n) if meta.sparse.is_pax_sparse() => n,
            _ => e.path_bytes().into_owned(),
        };
        let name = clean_entry_name(&raw_name)?;
        let (parent, leaf) = split_parent(&name);
        let (parent, leaf) = (parent.to_vec(), leaf.to_vec());

        if name.is_empty() {
            return self.root_entry(et, &meta);
        }
        if leaf.starts_with(WH_PREFIX) {
            return self.whiteout(&parent, &leaf, &meta);
        }
        if name.starts_with(WH_META_PREFIX) {
            return Ok(()); // AUFS metadata (.wh..wh.plnk/...): never extracted
        }

        let pfd = self.root.dir(&parent, true)?.ok_or_else(|| Error::corrupt("parent directory vanished"))?;
        use tar::EntryType as T;
        match et {
            T::Directory => self.mkdir(&pfd, &name, &leaf, &meta)?,
            T::Regular | T::Continuous | T::GNUSparse => self.regular(e, &pfd, &name, &leaf, &meta)?,
            T::Symlink => self.symlink(e, &pfd, &name, &leaf, &meta)?,
            T::Link => self.hardlink(e, &pfd, &name, &leaf, &meta)?,
            T::Char | T::Block | T::Fifo => self.mknod(e, et, &pfd, &name, &leaf, &meta)?,
            other => {
                return Err(Error::corrupt(format!(
                    "{}: unsupported tar entry type {:?}",
                    show(&name),
                    other.as_byte() as char
                )))
            }
        }
        self.mark_unpacked(&name);
        Ok(())
    }

    fn root_entry(&mut self, et: tar::EntryType, meta: &Meta) -> Result<()> {
        if et.is_pax_global_extensions() {
            return Ok(());
        }
        if !et.is_dir() {
            return Err(Error::unsafe_path("the layer's root entry is not a directory"));
        }
        if self.mode == Whiteouts::Overlay {
            return Ok(()); // Docker's Unpack skips "."
        }
        let fd = self.root.fd();
        let fd: BorrowedFd<'_> = fd;
        apply_owner_fd(fd, meta, b"")?;
        let xs = self.filter_xattrs(&meta.xattrs);
        set_xattrs_fd(fd, &xs, b"")?;
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).ctx(|| "chmod /".to_string())?;
        self.dirs.push((Vec::new(), meta.atime, meta.mtime));
        Ok(())
    }

    // -- whiteouts -----------------------------------------------------------

    fn whiteout(&mut self, parent: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
        if leaf == WH_OPAQUE {
            return self.opaque(parent);
        }
        if leaf.starts_with(WH_META_PREFIX) {
            return Ok(()); // other AUFS metadata
        }
        let orig = &leaf[WH_PREFIX.len()..];
        if orig.is_empty() || orig == b"." || orig == b".." {
            return Err(Error::unsafe_path(format!("invalid whiteout {:?}", show(&fsops::join(parent, leaf)))));
        }
        let path = fsops::join(parent, orig);
        match self.mode {
            Whiteouts::Overlay => {
                let pfd = self.root.dir(parent, true)?.ok_or_else(|| Error::corrupt("parent directory vanished"))?;
                let mk = || rfs::mknodat(&*pfd, orig, FileType::CharacterDevice, Mode::empty(), 0);
                match mk() {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        fsops::remove_all_at(pfd.as_fd(), orig).map_err(|e| fs_err(e, || format!("remove {}", show(&path))))?;
                        self.root.invalidate();
                        mk().map_err(|e| fs_err(e, || format!("whiteout {}", show(&path))))?;
                    }
                    Err(e) => return Err(fs_err(e, || format!("whiteout {}", show(&path)))),
                }
                rfs::chownat(&*pfd, orig, Some(uid(meta.uid)), Some(gid(meta.gid)), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| fs_err(e, || format!("chown whiteout {}", show(&path))))?;
            }
            Whiteouts::Naive => {
                // Nothing to delete beneath a parent that doesn't resolve to a
                // directory (missing, dangling symlink, a file).
                let Ok(Some(pfd)) = self.root.dir(parent, false) else { return Ok(()) };
                fsops::remove_all_at(pfd.as_fd(), orig).map_err(|e| fs_err(e, || format!("remove {}", show(&path))))?;
                self.root.invalidate();
            }
        }
        Ok(())
    }

    fn opaque(&mut self, dir: &[u8]) -> Result<()> {
        if self.mode == Whiteouts::Naive {
            // Nothing was there before if it doesn't resolve to a directory.
            if !matches!(self.root.dir(dir, false), Ok(Some(_))) {
                return Ok(());
            }
        } else {
            // The upper dir needs the directory to carry the marker.
            self.root.dir(dir, true)?;
        }
        let dfd = self.root.open_dir_rdonly(dir).map_err(|e| fs_err(e, || format!("open opaque dir {}", show(dir))))?;
        match self.mode {
            Whiteouts::Overlay => {
                let name = if self.userns { "user.overlay.opaque" } else { "trusted.overlay.opaque" };
                rfs::fsetxattr(&dfd, name, b"y", rfs::XattrFlags::empty())
                    .ctx(|| format!("set {name} on {}", show(dir)))?;
            }
            Whiteouts::Naive => {
                self.clear_preexisting(dfd.as_fd(), dir)?;
                self.root.invalidate();
            }
        }
        Ok(())
    }

    /// Remove whatever in `dfd` this layer didn't unpack (recursing into
    /// directories that hold things it did).
    fn clear_preexisting(&mut self, dfd: BorrowedFd<'_>, rel: &[u8]) -> Result<()> {
        let names = fsops::list_dir(dfd).map_err(|e| fs_err(e, || format!("list {}", show(rel))))?;
        for n in names {
            let p = fsops::join(rel, &n);
            if self.unpacked.contains(&p) || self.ancestors.contains(&p) {
                let st = rfs::statat(dfd, &n[..], AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fs_err(e, || format!("stat {}", show(&p))))?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    let sub = rfs::openat(dfd, &n[..], OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                        .map_err(|e| fs_err(e, || format!("open {}", show(&p))))?;
                    self.clear_preexisting(sub.as_fd(), &p)?;
                }
            } else {
                fsops::remove_all_at(dfd, &n).map_err(|e| fs_err(e, || format!("remove {}", show(&p))))?;
            }
        }
        Ok(())
    }

    // -- entries -------------------------------------------------------------

    fn filter_xattrs(&self, xs: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(xs.len());
        for (k, v) in xs {
            if k == b"security.selinux" {
                continue; // host policy, not image content
            }
            if self.mode == Whiteouts::Overlay && k.starts_with(b"trusted.overlay.") {
                // Never steer overlayfs from image content: store it escaped
                // (the kernel shows `trusted.overlay.overlay.X` as
                // `trusted.overlay.X` in the merged view).
                let mut nk = b"trusted.overlay.overlay.".to_vec();
                nk.extend_from_slice(&k[b"trusted.overlay.".len()..]);
                out.push((nk, v.clone()));
                continue;
            }
            if self.mode == Whiteouts::Overlay && self.userns && k.starts_with(b"user.overlay.") {
                let mut nk = b"user.overlay.overlay.".to_vec();
                nk.extend_from_slice(&k[b"user.overlay.".len()..]);
                out.push((nk, v.clone()));
                continue;
            }
            out.push((k.clone(), v.clone()));
        }
        out
    }

    /// Remove what is at `leaf` (after EEXIST) so the entry can replace it.
    fn replace(&mut self, pfd: &OwnedFd, name: &[u8], leaf: &[u8]) -> Result<()> {
        fsops::remove_all_at(pfd.as_fd(), leaf).map_err(|e| fs_err(e, || format!("replace {}", show(name))))?;
        self.root.invalidate();
        Ok(())
    }

    fn mkdir(&mut self, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
        match rfs::mkdirat(&**pfd, leaf, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rfs::statat(&**pfd, leaf, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fs_err(e, || format!("stat {}", show(name))))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    self.replace(pfd, name, leaf)?;
                    rfs::mkdirat(&**pfd, leaf, Mode::from_raw_mode(0o700)).map_err(|e| fs_err(e, || format!("mkdir {}", show(name))))?;
                }
            }
            Err(e) => return Err(fs_err(e, || format!("mkdir {}", show(name)))),
        }
        let dfd = rfs::openat(&**pfd, leaf, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| fs_err(e, || format!("open {}", show(name))))?;
        apply_owner_fd(dfd.as_fd(), meta, name)?;
        let xs = self.filter_xattrs(&meta.xattrs);
        set_xattrs_fd(dfd.as_fd(), &xs, name)?;
        rfs::fchmod(&dfd, Mode::from_raw_mode(meta.mode)).map_err(|e| fs_err(e, || format!("chmod {}", show(name))))?;
        self.dirs.push((name.to_vec(), meta.atime, meta.mtime));
        self.root.remember(name, Rc::new(dfd));
        Ok(())
    }

    fn regular<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
        let open = || {
            rfs::openat(
                &**pfd,
                leaf,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        };
        let fd = match open() {
            Ok(fd) => fd,
            Err(Errno::EXIST) => {
                self.replace(pfd, name, leaf)?;
                open().map_err(|e| fs_err(e, || format!("create {}", show(name))))?
            }
            Err(e) => return Err(fs_err(e, || format!("create {}", show(name)))),
        };
        let mut f = File::from(fd);
        let gnu_sparse = e.header().entry_type().is_gnu_sparse();
        if let Some(rec) = &self.split {
            // Plain contents are re-read from the file when the tar is rebuilt;
            // sparse data stays in the record. The position check makes sure
            // the stream really is at this entry's first content byte.
            let mut rec = rec.borrow_mut();
            if !gnu_sparse && !meta.sparse.is_pax_sparse() && rec.pos() == e.raw_file_position() {
                rec.begin_file(name, e.size());
            }
        }
        if meta.sparse.is_pax_sparse() {
            self.write_pax_sparse(e, &mut f, name, meta)?;
        } else {
            let size = e.size();
            let mut written: u64 = 0;
            let mut pos: u64 = 0;
            loop {
                let n = match e.read(&mut self.buf) {
                    Ok(n) => n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(tar_err(err)),
                };
                if n == 0 {
                    break;
                }
                if gnu_sparse {
                    write_maybe_sparse(&mut f, &self.buf[..n], &mut pos).ctx(|| format!("write {}", show(name)))?;
                } else {
                    f.write_all(&self.buf[..n]).ctx(|| format!("write {}", show(name)))?;
                }
                written += n as u64;
            }
            if written != size {
                return Err(Error::corrupt(format!("truncated tar stream: {} has {} of {} bytes", show(name), written, size)));
            }
            if gnu_sparse {
                f.set_len(size).ctx(|| format!("truncate {}", show(name)))?;
            }
        }
        let fd = f.as_fd();
        apply_owner_fd(fd, meta, name)?;
        let xs = self.filter_xattrs(&meta.xattrs);
        set_xattrs_fd(fd, &xs, name)?;
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(|e| fs_err(e, || format!("chmod {}", show(name))))?;
        rfs::futimens(fd, &Timestamps { last_access: meta.atime, last_modification: meta.mtime })
            .map_err(|e| fs_err(e, || format!("set times of {}", show(name))))?;
        Ok(())
    }

    /// PAX sparse formats 0.0/0.1 (map in the records) and 1.0 (map at the
    /// start of the data): data segments are written at their offsets, holes
    /// stay holes.
    fn write_pax_sparse<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, f: &mut File, name: &[u8], meta: &Meta) -> Result<()> {
        let real = meta.sparse.real_size.unwrap_or(0);
        let stored = e.size();
        let mut consumed: u64 = 0;
        let map: Vec<u64> = if meta.sparse.is_v1() {
            // Decimal numbers, one per line: count, then offset/length pairs;
            // padded to a 512-byte block.
            let mut nums = Vec::new();
            let mut cur: Vec<u8> = Vec::new();
            let mut want: Option<u64> = None;
            let mut byte = [0u8; 1];
            loop {
                if let Some(w) = want {
                    if nums.len() as u64 == w * 2 {
                        break;
                    }
                }
                let n = e.read(&mut byte).map_err(tar_err)?;
                if n == 0 {
                    return Err(Error::corrupt(format!("{}: truncated sparse map", show(name))));
                }
                consumed += 1;
                if consumed > 1 << 20 {
                    return Err(Error::corrupt(format!("{}: sparse map too large", show(name))));
                }
                if byte[0] == b'\n' {
                    let v = parse_u64(&cur).ok_or_else(|| Error::corrupt(format!("{}: invalid sparse map", show(name))))?;
                    cur.clear();
                    if want.is_none() {
                        want = Some(v);
                    } else {
                        nums.push(v);
                    }
                } else {
                    cur.push(byte[0]);
                }
            }
            let pad = (512 - consumed % 512) % 512;
            let mut skip = vec![0u8; pad as usize];
            e.read_exact(&mut skip).map_err(|_| Error::corrupt(format!("{}: truncated sparse map", show(name))))?;
            consumed += pad;
            nums
        } else {
            meta.sparse.map.clone()
        };
        if map.len() % 2 != 0 {
            return Err(Error::corrupt(format!("{}: invalid sparse map", show(name))));
        }
        for pair in map.chunks(2) {
            let (off, len) = (pair[0], pair[1]);
            if off.checked_add(len).map(|end| end > real).unwrap_or(true) {
                return Err(Error::corrupt(format!("{}: sparse segment beyond the file size", show(name))));
            }
            f.seek(SeekFrom::Start(off)).ctx(|| format!("seek {}", show(name)))?;
            let mut left = len;
            while left > 0 {
                let k = (left as usize).min(self.buf.len());
                let n = e.read(&mut self.buf[..k]).map_err(tar_err)?;
                if n == 0 {
                    return Err(Error::corrupt(format!("truncated tar stream in sparse file {}", show(name))));
                }
                f.write_all(&self.buf[..n]).ctx(|| format!("write {}", show(name)))?;
                left -= n as u64;
                consumed += n as u64;
            }
        }
        if consumed > stored {
            return Err(Error::corrupt(format!("{}: sparse data exceeds the entry", show(name))));
        }
        f.set_len(real).ctx(|| format!("truncate {}", show(name)))?;
        Ok(())
    }

    fn symlink<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
        let target = e.link_name_bytes().map(|c| c.into_owned()).unwrap_or_default();
        if target.is_empty() || target.contains(&0) {
            return Err(Error::corrupt(format!("{}: invalid symlink target", show(name))));
        }
        if symlink_escapes(name, &target) {
            return Err(Error::unsafe_path(format!("invalid symlink {:?} -> {:?}", show(name), show(&target))));
        }
        let mk = || rfs::symlinkat(&target[..], &**pfd, leaf);
        match mk() {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.replace(pfd, name, leaf)?;
                mk().map_err(|e| fs_err(e, || format!("symlink {}", show(name))))?;
            }
            Err(e) => return Err(fs_err(e, || format!("symlink {}", show(name)))),
        }
        self.finish_at(pfd, name, leaf, meta, false)
    }

    fn hardlink<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
        let raw = e.link_name_bytes().map(|c| c.into_owned()).unwrap_or_default();
        let t = clean_link_target(&raw)?;
        if t.is_empty() {
            return Err(Error::unsafe_path(format!("invalid hardlink {:?} -> {:?}", show(name), show(&raw))));
        }
        let (tp, tl) = split_parent(&t);
        let tpfd = self
            .root
            .dir(tp, false)?
            .ok_or_else(|| Error::corrupt(format!("hardlink {} -> {}: target does not exist", show(name), show(&t))))?;
        let link = |tpfd: &OwnedFd| rfs::linkat(tpfd, tl, &**pfd, leaf, AtFlags::empty());
        match link(&tpfd) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                // Linking a path to itself: nothing to do.
                let a = rfs::statat(&*tpfd, tl, AtFlags::SYMLINK_NOFOLLOW);
                let b = rfs::statat(&**pfd, leaf, AtFlags::SYMLINK_NOFOLLOW);
                if let (Ok(a), Ok(b)) = (a, b) {
                    if a.st_dev == b.st_dev && a.st_ino == b.st_ino {
                        return Ok(());
                    }
                }
                self.replace(pfd, name, leaf)?;
                link(&tpfd).map_err(|e| hl_err(e, name, &t))?;
            }
            Err(e) => return Err(hl_err(e, name, &t)),
        }
        self.finish_at(pfd, name, leaf, meta, true)
    }

    fn mknod<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, et: tar::EntryType, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
        let ft = match et {
            tar::EntryType::Char => FileType::CharacterDevice,
            tar::EntryType::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        if self.userns && ft != FileType::Fifo {
            return Ok(()); // can't make devices in a user namespace (Docker skips them)
        }
        let h = e.header();
        let major = h.device_major().ok().flatten().unwrap_or(0);
        let minor = h.device_minor().ok().flatten().unwrap_or(0);
        let dev = rfs::makedev(major, minor);
        let mk = || rfs::mknodat(&**pfd, leaf, ft, Mode::from_raw_mode(meta.mode & 0o777), dev);
        match mk() {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.replace(pfd, name, leaf)?;
                mk().map_err(|e| fs_err(e, || format!("mknod {}", show(name))))?;
            }
            Err(e) => return Err(fs_err(e, || format!("mknod {}", show(name)))),
        }
        self.finish_at(pfd, name, leaf, meta, true)
    }

    /// Owner, xattrs, mode, times for an entry we can't (or won't) open.
    fn finish_at(&mut self, pfd: &OwnedFd, name: &[u8], leaf: &[u8], meta: &Meta, chmod: bool) -> Result<()> {
        rfs::chownat(pfd, leaf, Some(uid(meta.uid)), Some(gid(meta.gid)), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fs_err(e, || format!("chown {}", show(name))))?;
        let xs = self.filter_xattrs(&meta.xattrs);
        if !xs.is_empty() {
            let p = fsops::proc_path(pfd.as_fd(), leaf);
            for (k, v) in &xs {
                rfs::lsetxattr(&p[..], &k[..], v, rfs::XattrFlags::empty())
                    .map_err(|e| fs_err(e, || format!("set xattr {} on {}", show(k), show(name))))?;
            }
        }
        if chmod {
            match fsops::chmod_nofollow(pfd.as_fd(), leaf, meta.mode) {
                Ok(()) | Err(Errno::OPNOTSUPP) => {} // a symlink (hardlinked): no mode
                Err(e) => return Err(fs_err(e, || format!("chmod {}", show(name)))),
            }
        }
        rfs::utimensat(pfd, leaf, &Timestamps { last_access: meta.atime, last_modification: meta.mtime }, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fs_err(e, || format!("set times of {}", show(name))))?;
        Ok(())
    }
}

fn hl_err(e: Errno, name: &[u8], target: &[u8]) -> Error {
    match e {
        Errno::NOENT => Error::corrupt(format!("hardlink {} -> {}: target does not exist", show(name), show(target))),
        Errno::PERM => Error::corrupt(format!("hardlink {} -> {}: not permitted (a directory?)", show(name), show(target))),
        e => fs_err(e, || format!("hardlink {} -> {}", show(name), show(target))),
    }
}

fn uid(u: u32) -> rfs::Uid {
    rfs::Uid::from_raw(u)
}
fn gid(g: u32) -> rfs::Gid {
    rfs::Gid::from_raw(g)
}

fn apply_owner_fd(fd: BorrowedFd<'_>, meta: &Meta, name: &[u8]) -> Result<()> {
    rfs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid))).map_err(|e| fs_err(e, || format!("chown {}", show(name))))
}

fn set_xattrs_fd(fd: BorrowedFd<'_>, xs: &[(Vec<u8>, Vec<u8>)], name: &[u8]) -> Result<()> {
    for (k, v) in xs {
        rfs::fsetxattr(fd, &k[..], v, rfs::XattrFlags::empty())
            .map_err(|e| fs_err(e, || format!("set xattr {} on {}", show(k), show(name))))?;
    }
    Ok(())
}

/// Write `data` at `*pos`, seeking over 4 KiB blocks that are all zeros
/// (GNU sparse entries arrive expanded; this keeps the holes).
fn write_maybe_sparse(f: &mut File, data: &[u8], pos: &mut u64) -> std::io::Result<()> {
    const B: usize = 4096;
    let mut i = 0;
    while i < data.len() {
        let end = (i + B).min(data.len());
        let block = &data[i..end];
        if block.iter().all(|&b| b == 0) {
            *pos += block.len() as u64;
        } else {
            // Extend the run of non-zero blocks.
            let mut j = end;
            while j < data.len() {
                let e2 = (j + B).min(data.len());
                if data[j..e2].iter().all(|&b| b == 0) {
                    break;
                }
                j = e2;
            }
            f.seek(SeekFrom::Start(*pos))?;
            f.write_all(&data[i..j])?;
            *pos += (j - i) as u64;
            i = j;
            continue;
        }
        i = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{create_layer, CreateOptions};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn tar_of(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses "..": write the raw name for the malicious cases.
        let nb = name.as_bytes();
        h.as_old_mut().name[..nb.len()].copy_from_slice(nb);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn symlink(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_path(name).unwrap();
        h.set_link_name(target).unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }

    fn run(data: &[u8], target: &Path, wh: Whiteouts) -> Result<LayerInfo> {
        let abort = AtomicBool::new(false);
        extract(std::io::Cursor::new(data.to_vec()), target, wh, &abort)
    }

    #[test]
    fn extracts_and_hashes() {
        let d = tempfile::tempdir().unwrap();
        let data = tar_of(|b| file(b, "a/b/c.txt", b"hello", 0o4755));
        let info = run(&data, d.path(), Whiteouts::Overlay).unwrap();
        assert_eq!(info.diff_id, crate::digest::of_bytes(&data));
        assert_eq!(info.digest, info.diff_id);
        assert_eq!(info.size, data.len() as u64);
        let p = d.path().join("a/b/c.txt");
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o4755);
    }

    #[test]
    fn gzip_digest_covers_compressed_bytes() {
        let d = tempfile::tempdir().unwrap();
        let data = tar_of(|b| file(b, "x", &vec![7u8; 100_000], 0o644));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let info = run(&gz, d.path(), Whiteouts::Overlay).unwrap();
        assert_eq!(info.digest, crate::digest::of_bytes(&gz));
        assert_eq!(info.diff_id, crate::digest::of_bytes(&data));
        assert_eq!(info.compression, crate::Compression::Gzip);
        // truncated: corrupt, target emptied
        let e = tempfile::tempdir().unwrap();
        let err = run(&gz[..gz.len() - 10], e.path(), Whiteouts::Overlay).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
        assert_eq!(std::fs::read_dir(e.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_breakouts_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let data = tar_of(|b| {
            file(b, "ok", b"ok", 0o644);
            file(b, "../escape", b"x", 0o644);
        });
        let err = run(&data, d.path(), Whiteouts::Overlay).unwrap_err();
        assert!(matches!(err, Error::Unsafe(_)), "{err}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        let data = tar_of(|b| {
            symlink(b, "s", "..");
            file(b, "s/x", b"x", 0o644);
        });
        assert!(matches!(run(&data, d.path(), Whiteouts::Overlay), Err(Error::Unsafe(_))));
    }

    #[test]
    fn absolute_symlink_parent_stays_inside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let data = tar_of(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_path("etc").unwrap();
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
            symlink(b, "evil", "/");
            file(b, "evil/etc/x", b"x", 0o644);
        });
        run(&data, &root, Whiteouts::Overlay).unwrap();
        assert_eq!(std::fs::read(root.join("etc/x")).unwrap(), b"x");
    }

    #[test]
    fn naive_opaque_keeps_this_layers_entries() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("o/old")).unwrap();
        std::fs::write(d.path().join("o/stale"), b"s").unwrap();
        let data = tar_of(|b| {
            file(b, "o/new", b"n", 0o644);
            file(b, "o/.wh..wh..opq", b"", 0o644);
            file(b, "o/later", b"l", 0o644);
        });
        run(&data, d.path(), Whiteouts::Naive).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(d.path().join("o")).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, vec!["later", "new"]);
    }

    #[test]
    fn overlay_whiteout_is_a_char_device() {
        let d = tempfile::tempdir().unwrap();
        let data = tar_of(|b| file(b, "dir/.wh.gone", b"", 0o644));
        run(&data, d.path(), Whiteouts::Overlay).unwrap();
        let m = std::fs::symlink_metadata(d.path().join("dir/gone")).unwrap();
        assert_eq!(m.mode() & libc::S_IFMT, libc::S_IFCHR);
        assert_eq!(m.rdev(), 0);
    }

    #[test]
    fn create_then_extract_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/f"), b"data").unwrap();
        std::fs::hard_link(src.join("a/b/f"), src.join("a/h")).unwrap();
        std::os::unix::fs::symlink("b/f", src.join("a/l")).unwrap();
        let mut out = Vec::new();
        let info = create_layer(&src, &mut out, &CreateOptions { compression: crate::Compression::Zstd, ..Default::default() }).unwrap();
        assert_eq!(info.digest, crate::digest::of_bytes(&out));
        let dst = d.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        let got = run(&out, &dst, Whiteouts::Naive).unwrap();
        assert_eq!(got, info);
        assert_eq!(std::fs::read(dst.join("a/h")).unwrap(), b"data");
        let (m1, m2) = (std::fs::metadata(dst.join("a/h")).unwrap(), std::fs::metadata(dst.join("a/b/f")).unwrap());
        assert_eq!(m1.ino(), m2.ino());
        assert_eq!(std::fs::read_link(dst.join("a/l")).unwrap(), Path::new("b/f"));
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1600000000.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_600_000_000, 250_000_000));
        let t = parse_pax_time(b"-1.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 500_000_000));
        assert!(parse_pax_time(b"abc").is_none());
    }
}
