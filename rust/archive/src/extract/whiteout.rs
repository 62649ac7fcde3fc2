//! Whiteouts (`.wh.<name>`) and opaque markers (`.wh..wh..opq`), applied as
//! [`Whiteouts`] says: overlay upper-dir form, or removal from the copy of
//! the parent layer (naive).

use super::extractor::{chown_result, gid, uid, Extractor};
use super::meta::Meta;
use super::{Whiteouts, WH_META_PREFIX, WH_OPAQUE, WH_PREFIX};
use crate::error::{show, Ctx, Error, Result};
use crate::fsops::{self, fs_err};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd};

impl Extractor<'_> {
    pub(super) fn whiteout(&mut self, parent: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
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
            Whiteouts::Plain => unreachable!("plain mode extracts whiteouts as files"),
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
                chown_result(rfs::chownat(&*pfd, orig, Some(uid(meta.uid)), Some(gid(meta.gid)), AtFlags::SYMLINK_NOFOLLOW), meta, &path)?;
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
            Whiteouts::Plain => unreachable!("plain mode extracts whiteouts as files"),
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
}
