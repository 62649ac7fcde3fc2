//! Creating one entry of each plain kind: directories (merged into an
//! existing one), regular files (contents streamed; sparse ones via
//! `sparse`), symlinks (refused when they lexically climb out of the
//! root), device nodes and fifos. An existing path the entry can't merge
//! with is replaced.

use super::extractor::{apply_owner_fd, set_xattrs_fd, Extractor};
use super::meta::Meta;
use super::sparse::write_maybe_sparse;
use super::tar_err;
use crate::error::{show, Ctx, Error, Result};
use crate::fsops::fs_err;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

impl Extractor<'_> {
    pub(super) fn mkdir(&mut self, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
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

    pub(super) fn regular<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
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
                self.account(n as u64)?;
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

    pub(super) fn symlink<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
        let target = e.link_name_bytes().map(|c| c.into_owned()).unwrap_or_default();
        if target.is_empty() || target.contains(&0) {
            return Err(Error::corrupt(format!("{}: invalid symlink target", show(name))));
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

    pub(super) fn mknod<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, et: tar::EntryType, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
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
}
