//! The walk over the tree in lexical order, and in diff mode (`parent_root`)
//! alongside the parent's: Docker's naive diff decides what changed, deleted
//! names become `.wh.<name>` entries, and unchanged directories are written
//! only once something beneath them changed.

use super::header::{header_bytes, Hdr};
use super::output::TarSink;
use crate::error::{show, Error, Result};
use crate::extract::WH_PREFIX;
use crate::fsops::{join, list_dir};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

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

pub(super) struct Pending {
    rel: Vec<u8>,
    st: rfs::Stat,
    fd: OwnedFd,
}

pub(super) struct Walker<'a, 'b> {
    pub(super) sink: &'a mut TarSink<'b>,
    pub(super) overlay_upper: bool,
    pub(super) id_map: Option<&'a crate::idmap::IdMap>,
    pub(super) seen: HashMap<(u64, u64), Vec<u8>>,
    /// Unchanged directories above the current position whose headers are
    /// written only if something beneath them changed (diff mode).
    pub(super) pending: Vec<Pending>,
    pub(super) buf: Vec<u8>,
}

impl Walker<'_, '_> {
    /// The header's bytes, its owner as the container sees it under a remap.
    pub(super) fn header(&self, h: &Hdr) -> Vec<u8> {
        match self.id_map {
            None => header_bytes(h),
            Some(m) => {
                let (uid, gid) = m.to_container(h.uid, h.gid);
                header_bytes(&Hdr { uid, gid, ..h.clone() })
            }
        }
    }
}

fn sorted_names(fd: BorrowedFd<'_>, rel: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut v = list_dir(fd).map_err(|e| Error::io(format!("list {}", show(rel)), e.into()))?;
    v.sort();
    Ok(v)
}

impl Walker<'_, '_> {
    pub(super) fn out(&mut self, b: &[u8]) -> Result<()> {
        self.sink.push(b).map_err(|e| Error::io("write layer", e))
    }

    pub(super) fn walk(&mut self, new: BorrowedFd<'_>, old: Option<BorrowedFd<'_>>, rel: &[u8]) -> Result<()> {
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
        let b = self.header(&h);
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
}
