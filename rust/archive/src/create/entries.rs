//! Writing one entry: a directory header (with the overlay opaque marker
//! after it), or a non-directory's header and contents, as a hardlink to the
//! first name of an inode already written, or as `.wh.<name>` for an overlay
//! whiteout device.

use super::header::Hdr;
use super::walk::Walker;
use crate::error::{show, Error, Result};
use crate::extract::{WH_OPAQUE, WH_PREFIX};
use crate::fsops::{self, join};
use rustix::fs::{self as rfs, Mode, OFlags};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

impl Walker<'_, '_> {
    pub(super) fn dir_header(&mut self, rel: &[u8], st: &rfs::Stat, fd: BorrowedFd<'_>) -> Result<()> {
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
        let b = self.header(&h);
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
            let b = self.header(&wo);
            self.out(&b)?;
        }
        Ok(())
    }

    pub(super) fn non_dir(&mut self, dir: BorrowedFd<'_>, name: &[u8], rel: &[u8], st: &rfs::Stat) -> Result<()> {
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
            let b = self.header(&h);
            return self.out(&b);
        }
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.seen.get(&key) {
                h.typeflag = b'1';
                h.link = first.clone();
                h.xattrs = self.xattrs_of(None, dir, name, rel)?.0;
                let b = self.header(&h);
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
                let b = self.header(&h);
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
        let b = self.header(&h);
        self.out(&b)
    }
}
