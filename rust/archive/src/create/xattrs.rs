//! Extended attributes of what is archived: all but `security.selinux`; for
//! an overlay upper dir, overlayfs' own `trusted.overlay.*` (`user.overlay.*`
//! in a user namespace, where it is mounted with `userxattr`) are left out (the
//! opaque one is reported) and escaped ones written unescaped; v3 file
//! capabilities are written as v2.

use super::walk::Walker;
use crate::error::{show, Error, Result};
use crate::fsops;
use rustix::fs as rfs;
use rustix::io::Errno;
use std::os::fd::BorrowedFd;

impl Walker<'_, '_> {
    pub(super) fn xattrs_of(&self, fd: Option<BorrowedFd<'_>>, dir: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, bool)> {
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
                // In a user namespace (the rootless daemon) overlayfs is
                // mounted with `userxattr`: its own xattrs are `user.overlay.*`.
                let (own, opq, esc): (&[u8], &[u8], &[u8]) = if fsops::in_user_ns() {
                    (b"user.overlay.", b"user.overlay.opaque", b"user.overlay.overlay.")
                } else {
                    (b"trusted.overlay.", b"trusted.overlay.opaque", b"trusted.overlay.overlay.")
                };
                if k == opq {
                    opaque = get(&k).ok().as_deref() == Some(b"y");
                    continue;
                }
                if let Some(rest) = k.strip_prefix(esc) {
                    key = [own, rest].concat();
                } else if k.starts_with(own) {
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
