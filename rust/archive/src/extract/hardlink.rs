//! Hardlink entries: the target must already exist inside the root (it was
//! extracted earlier in this layer or lies in the parent's copy); linking a
//! path to itself is a no-op.

use super::extractor::Extractor;
use super::meta::Meta;
use crate::error::{show, Error, Result};
use crate::fsops::{clean_link_target, fs_err, split_parent};
use rustix::fs::{self as rfs, AtFlags};
use rustix::io::Errno;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::rc::Rc;

impl Extractor<'_> {
    pub(super) fn hardlink<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, pfd: &Rc<OwnedFd>, name: &[u8], leaf: &[u8], meta: &Meta) -> Result<()> {
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

}

fn hl_err(e: Errno, name: &[u8], target: &[u8]) -> Error {
    match e {
        Errno::NOENT => Error::corrupt(format!("hardlink {} -> {}: target does not exist", show(name), show(target))),
        Errno::PERM => Error::corrupt(format!("hardlink {} -> {}: not permitted (a directory?)", show(name), show(target))),
        e => fs_err(e, || format!("hardlink {} -> {}", show(name), show(target))),
    }
}
