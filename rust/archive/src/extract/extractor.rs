//! The extraction of one layer: its state (the root, the whiteout mode,
//! directory times to set at the end, what naive opaque markers must keep),
//! the walk over the tar stream's entries, dispatched by type, and the
//! metadata (owner, xattrs, mode, times) every kind of entry gets.

use super::meta::{read_meta, Meta};
use super::{tar_err, Whiteouts, WH_META_PREFIX, WH_PREFIX};
use crate::error::{show, Ctx, Error, Result};
use crate::fsops::{self, clean_entry_name, fs_err, split_parent, Root};
use crate::pipeline::ChunkReader;
use crate::tarsplit::{Recorder, SplitReader};
use rustix::fs::{self as rfs, AtFlags, Mode, Timespec, Timestamps};
use rustix::io::Errno;
use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) struct Extractor<'a> {
    pub(super) root: &'a mut Root,
    pub(super) mode: Whiteouts,
    abort: &'a AtomicBool,
    /// Directories whose times are set at the end: (path, atime, mtime).
    pub(super) dirs: Vec<(Vec<u8>, Timespec, Timespec)>,
    /// Naive mode: paths this layer unpacked, and their ancestors, which an
    /// opaque marker must keep.
    pub(super) unpacked: HashSet<Vec<u8>>,
    pub(super) ancestors: HashSet<Vec<u8>>,
    pub(super) buf: Vec<u8>,
    pub(super) userns: bool,
    /// Records the non-content bytes of the stream when a tar-split is asked for.
    pub(super) split: Option<Rc<RefCell<Recorder>>>,
    /// File bytes written so far, and when to look at the free space next.
    written: u64,
    next_space_check: u64,
}

/// How much file data is written between two looks at the free space.
const SPACE_CHECK_EVERY: u64 = 64 << 20;

/// The space a layer may not eat into: 5% of the filesystem, at most 512 MiB.
/// A compression bomb (or just too big a layer) stops there with ENOSPC,
/// leaving room for the daemon's own records, and nothing is registered.
pub fn space_reserve(total: u64) -> u64 {
    (total / 20).min(512 << 20)
}

impl<'a> Extractor<'a> {
    pub(super) fn new(root: &'a mut Root, mode: Whiteouts, abort: &'a AtomicBool) -> Self {
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
            written: 0,
            next_space_check: SPACE_CHECK_EVERY,
        }
    }

    /// Count `n` bytes of file data; every SPACE_CHECK_EVERY bytes, fail
    /// with ENOSPC if the filesystem is down to its reserve.
    pub(super) fn account(&mut self, n: u64) -> Result<()> {
        self.written += n;
        if self.written < self.next_space_check {
            return Ok(());
        }
        self.next_space_check = self.written + SPACE_CHECK_EVERY;
        let st = rfs::fstatvfs(self.root.fd()).map_err(|e| fs_err(e, || "statvfs of the target".to_string()))?;
        let (free, total) = (st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize);
        let reserve = space_reserve(total);
        if free < reserve {
            return Err(Error::io(
                format!(
                    "unpacking stopped after {} MiB: less than {} MiB would be left free on the filesystem",
                    self.written >> 20,
                    reserve >> 20
                ),
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        Ok(())
    }

    /// Returns (tar stream size, diff ID).
    pub(super) fn run(&mut self, reader: ChunkReader) -> Result<(u64, String)> {
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
        if leaf.starts_with(WH_PREFIX) && self.mode != Whiteouts::Plain {
            return self.whiteout(&parent, &leaf, &meta);
        }
        if name.starts_with(WH_META_PREFIX) && self.mode != Whiteouts::Plain {
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
        if self.mode != Whiteouts::Naive {
            return Ok(()); // Docker's Unpack skips "." whatever its type
        }
        if !et.is_dir() {
            return Err(Error::unsafe_path("the layer's root entry is not a directory"));
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

    pub(super) fn filter_xattrs(&self, xs: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(xs.len());
        for (k, v) in xs {
            if k == b"security.selinux" {
                continue; // host policy, not image content
            }
            if self.mode == Whiteouts::Plain
                && (k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay."))
            {
                continue; // a plain archive never steers the overlay it lands in
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
    pub(super) fn replace(&mut self, pfd: &OwnedFd, name: &[u8], leaf: &[u8]) -> Result<()> {
        fsops::remove_all_at(pfd.as_fd(), leaf).map_err(|e| fs_err(e, || format!("replace {}", show(name))))?;
        self.root.invalidate();
        Ok(())
    }

    /// Owner, xattrs, mode, times for an entry we can't (or won't) open.
    pub(super) fn finish_at(&mut self, pfd: &OwnedFd, name: &[u8], leaf: &[u8], meta: &Meta, chmod: bool) -> Result<()> {
        chown_result(rfs::chownat(pfd, leaf, Some(uid(meta.uid)), Some(gid(meta.gid)), AtFlags::SYMLINK_NOFOLLOW), meta, name)?;
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

pub(super) fn uid(u: u32) -> rfs::Uid {
    rfs::Uid::from_raw(u)
}
pub(super) fn gid(g: u32) -> rfs::Gid {
    rfs::Gid::from_raw(g)
}

pub(super) fn apply_owner_fd(fd: BorrowedFd<'_>, meta: &Meta, name: &[u8]) -> Result<()> {
    chown_result(rfs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid))), meta, name)
}

/// A chown's outcome. In a user namespace (the rootless daemon) an ID beyond
/// its map fails with EINVAL: with only the user's own ID mapped, ownership is
/// squashed to root (podman's ignore_chown_errors; the daemon warned at start);
/// with a range, the pull fails with the numbers and where to fix them.
pub(super) fn chown_result(r: std::result::Result<(), Errno>, meta: &Meta, name: &[u8]) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(Errno::INVAL) if fsops::in_user_ns() => {
            let (u, g) = fsops::mapped_ids();
            if u <= 1 || g <= 1 {
                return Ok(());
            }
            Err(Error::io(
                format!("lchown {}", show(name)),
                std::io::Error::other(format!(
                    "invalid argument: the image needs uid {} and gid {} but only {u} uids and {g} gids are mapped \
                     in the rootless user namespace; give the user a larger range in /etc/subuid and /etc/subgid, then restart the daemon",
                    meta.uid, meta.gid
                )),
            ))
        }
        Err(e) => Err(fs_err(e, || format!("chown {}", show(name)))),
    }
}

pub(super) fn set_xattrs_fd(fd: BorrowedFd<'_>, xs: &[(Vec<u8>, Vec<u8>)], name: &[u8]) -> Result<()> {
    for (k, v) in xs {
        rfs::fsetxattr(fd, &k[..], v, rfs::XattrFlags::empty())
            .map_err(|e| fs_err(e, || format!("set xattr {} on {}", show(k), show(name))))?;
    }
    Ok(())
}
