//! Exact tree copies (the vfs driver's layers): owners, modes incl. setuid,
//! xattrs incl. `trusted.*`, hardlinks, symlinks, devices, fifos, sockets,
//! sparse files and timestamps. File data is reflinked (FICLONE) when the
//! filesystem can, otherwise copied in-kernel with copy_file_range, data
//! segment by data segment so holes stay holes.
//!
//! Symlinks in the source are never followed; the destination is a tree this
//! call creates.

use crate::error::{Context, Error, Result};
use crate::sys::{cstr, cvt, cvt_l};
use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

struct Copier {
    /// (dev, ino) of a multiply-linked source file → its first copy.
    links: HashMap<(u64, u64), PathBuf>,
    /// FICLONE failed once with "not supported": don't try again.
    no_reflink: bool,
    buf: Vec<u8>,
}

/// Copy the directory `src` to `dst`. `dst` may be missing or an existing
/// (normally empty) directory; its owner, mode, xattrs and times become `src`'s.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let m = fs::symlink_metadata(src).ctx("stat", src)?;
    if !m.is_dir() {
        return Err(Error::io("copy", src, io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    match fs::symlink_metadata(dst) {
        Ok(d) if d.is_dir() => {}
        Ok(_) => return Err(Error::io("copy", dst, io::Error::from_raw_os_error(libc::EEXIST))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => mkdir(dst)?,
        Err(e) => return Err(Error::io("stat", dst, e)),
    }
    let mut c = Copier { links: HashMap::new(), no_reflink: false, buf: Vec::new() };
    c.dir(src, dst, &m)
}

fn mkdir(p: &Path) -> Result<()> {
    let c = cstr(p).ctx("mkdir", p)?;
    cvt(unsafe { libc::mkdir(c.as_ptr(), 0o700) }).ctx("mkdir", p).map(drop)
}

impl Copier {
    fn dir(&mut self, src: &Path, dst: &Path, m: &Metadata) -> Result<()> {
        let rd = fs::read_dir(src).ctx("readdir", src)?;
        for ent in rd {
            let ent = ent.ctx("readdir", src)?;
            let s = ent.path();
            let d = dst.join(ent.file_name());
            let em = fs::symlink_metadata(&s).ctx("stat", &s)?;
            self.entry(&s, &d, &em)?;
        }
        // Last, so read-only dirs can be filled and mtimes stay.
        set_meta(src, dst, m, false)
    }

    fn entry(&mut self, s: &Path, d: &Path, m: &Metadata) -> Result<()> {
        let ft = m.file_type();
        if !ft.is_dir() && m.nlink() > 1 {
            let key = (m.dev(), m.ino());
            if let Some(first) = self.links.get(&key) {
                return fs::hard_link(first, d).ctx("link", d);
            }
            self.links.insert(key, d.to_path_buf());
        }
        if ft.is_dir() {
            mkdir(d)?;
            self.dir(s, d, m)
        } else if ft.is_file() {
            self.file(s, d, m)?;
            set_meta(s, d, m, false)
        } else if ft.is_symlink() {
            let t = fs::read_link(s).ctx("readlink", s)?;
            std::os::unix::fs::symlink(&t, d).ctx("symlink", d)?;
            set_meta(s, d, m, true)
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket() {
            let c = cstr(d).ctx("mknod", d)?;
            cvt(unsafe { libc::mknod(c.as_ptr(), m.mode() as libc::mode_t, m.rdev() as libc::dev_t) })
                .ctx("mknod", d)?;
            set_meta(s, d, m, false)
        } else {
            Err(Error::io("copy", s, io::Error::new(io::ErrorKind::Unsupported, "unknown file type")))
        }
    }

    fn file(&mut self, s: &Path, d: &Path, m: &Metadata) -> Result<()> {
        let src = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOATIME)
            .open(s)
            .or_else(|_| OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(s))
            .ctx("open", s)?;
        let dst = OpenOptions::new().write(true).create_new(true).mode(0o600).open(d).ctx("create", d)?;
        let size = m.len();
        if size == 0 {
            return Ok(());
        }
        if !self.no_reflink {
            let r = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
            if r == 0 {
                return Ok(());
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) | Some(libc::ENOSYS) => self.no_reflink = true,
                _ => {} // EXDEV, EINVAL...: this pair can't, others may
            }
        }
        self.data(&src, &dst, size).ctx("copy", d)?;
        dst.set_len(size).ctx("truncate", d)
    }

    /// Copy the data segments of `src` (skipping holes).
    fn data(&mut self, src: &File, dst: &File, size: u64) -> io::Result<()> {
        let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
        let mut off: i64 = 0;
        let size = size as i64;
        while off < size {
            let start = unsafe { libc::lseek(sfd, off, libc::SEEK_DATA) };
            let (start, end) = if start < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::ENXIO) => break, // only a hole is left
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => (off, size),
                    _ => return Err(io::Error::last_os_error()),
                }
            } else {
                let end = unsafe { libc::lseek(sfd, start, libc::SEEK_HOLE) };
                (start, if end < 0 { size } else { end.min(size) })
            };
            self.range(sfd, dfd, start, end)?;
            off = end;
        }
        Ok(())
    }

    fn range(&mut self, sfd: i32, dfd: i32, start: i64, end: i64) -> io::Result<()> {
        let mut so: libc::loff_t = start;
        let mut dof: libc::loff_t = start;
        while so < end {
            let n = unsafe { libc::copy_file_range(sfd, &mut so, dfd, &mut dof, (end - so) as usize, 0) };
            if n < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EXDEV) | Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                        return self.rw(sfd, dfd, so, end);
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(io::Error::last_os_error()),
                }
            }
            if n == 0 {
                break; // file shrank under us
            }
        }
        Ok(())
    }

    fn rw(&mut self, sfd: i32, dfd: i32, mut off: i64, end: i64) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0; 1 << 20];
        }
        while off < end {
            let want = ((end - off) as usize).min(self.buf.len());
            let n = cvt_l(unsafe { libc::pread(sfd, self.buf.as_mut_ptr() as *mut _, want, off) })? as usize;
            if n == 0 {
                break;
            }
            let mut w = 0;
            while w < n {
                let k = cvt_l(unsafe { libc::pwrite(dfd, self.buf[w..n].as_ptr() as *const _, n - w, off + w as i64) })?;
                w += k as usize;
            }
            off += n as i64;
        }
        Ok(())
    }
}

/// Owner, then xattrs (chown drops security.capability), then mode (chown
/// drops setuid/setgid), then times.
fn set_meta(src: &Path, dst: &Path, m: &Metadata, symlink: bool) -> Result<()> {
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid())).ctx("chown", dst)?;
    copy_xattrs(src, dst)?;
    let c = cstr(dst).ctx("chmod", dst)?;
    if !symlink {
        cvt(unsafe { libc::chmod(c.as_ptr(), (m.mode() & 0o7777) as libc::mode_t) }).ctx("chmod", dst)?;
    }
    let ts = [
        libc::timespec { tv_sec: m.atime() as _, tv_nsec: m.atime_nsec() as _ },
        libc::timespec { tv_sec: m.mtime() as _, tv_nsec: m.mtime_nsec() as _ },
    ];
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
        .ctx("utimes", dst)?;
    Ok(())
}

fn copy_xattrs(src: &Path, dst: &Path) -> Result<()> {
    let cs = cstr(src).ctx("listxattr", src)?;
    let cd = cstr(dst).ctx("setxattr", dst)?;
    let names = loop {
        let n = unsafe { libc::llistxattr(cs.as_ptr(), std::ptr::null_mut(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                return Ok(());
            }
            return Err(Error::io("listxattr", src, e));
        }
        if n == 0 {
            return Ok(());
        }
        let mut buf = vec![0u8; n as usize];
        let n = unsafe { libc::llistxattr(cs.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue; // grew meanwhile
            }
            return Err(Error::io("listxattr", src, e));
        }
        buf.truncate(n as usize);
        break buf;
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut cname = name.to_vec();
        cname.push(0);
        let value = loop {
            let n = unsafe { libc::lgetxattr(cs.as_ptr(), cname.as_ptr() as *const _, std::ptr::null_mut(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENODATA) {
                    break None;
                }
                return Err(Error::io("getxattr", src, e));
            }
            let mut v = vec![0u8; n as usize];
            let n = unsafe { libc::lgetxattr(cs.as_ptr(), cname.as_ptr() as *const _, v.as_mut_ptr() as *mut _, v.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ERANGE) => continue,
                    Some(libc::ENODATA) => break None,
                    _ => return Err(Error::io("getxattr", src, e)),
                }
            }
            v.truncate(n as usize);
            break Some(v);
        };
        let Some(v) = value else { continue };
        let r = unsafe { libc::lsetxattr(cd.as_ptr(), cname.as_ptr() as *const _, v.as_ptr() as *const _, v.len(), 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(Error::Io {
                op: "setxattr",
                path: dst.to_path_buf(),
                source: io::Error::new(e.kind(), format!("{}: {e}", String::from_utf8_lossy(name))),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn is_root() -> bool {
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn copies_a_tree() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("d/e")).unwrap();
        fs::write(src.join("f"), "hello").unwrap();
        fs::set_permissions(src.join("f"), fs::Permissions::from_mode(0o4751)).unwrap();
        fs::hard_link(src.join("f"), src.join("d/hl")).unwrap();
        std::os::unix::fs::symlink("../f", src.join("d/ln")).unwrap();
        std::os::unix::fs::symlink("/nowhere", src.join("dangling")).unwrap();
        let fifo = cstr(&src.join("fifo")).unwrap();
        unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) };
        // sparse: 1 MiB hole, 5 bytes, 1 MiB hole
        let f = File::create(src.join("sparse")).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_at(b"xyzzy", 1 << 20).unwrap();
        f.set_len(2 << 20).unwrap();
        drop(f);
        fs::set_permissions(src.join("d/e"), fs::Permissions::from_mode(0o500)).unwrap();
        if is_root() {
            let c = cstr(&src.join("null")).unwrap();
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
            let c = cstr(&src.join("wh")).unwrap();
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) };
            std::os::unix::fs::lchown(src.join("f"), Some(1234), Some(5678)).unwrap();
            fs::set_permissions(src.join("f"), fs::Permissions::from_mode(0o4751)).unwrap();
            let c = cstr(&src.join("d")).unwrap();
            unsafe {
                libc::setxattr(c.as_ptr(), c"trusted.overlay.opaque".as_ptr(), b"y".as_ptr() as *const _, 1, 0)
            };
        }

        let dst = t.path().join("dst");
        copy_tree(&src, &dst).unwrap();

        let m = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
        let sm = |p: &str| fs::symlink_metadata(src.join(p)).unwrap();
        assert_eq!(fs::read_to_string(dst.join("f")).unwrap(), "hello");
        assert_eq!(m("f").mode() & 0o7777, 0o4751);
        assert_eq!(m("f").ino(), m("d/hl").ino());
        assert_eq!(fs::read_link(dst.join("d/ln")).unwrap(), PathBuf::from("../f"));
        assert_eq!(fs::read_link(dst.join("dangling")).unwrap(), PathBuf::from("/nowhere"));
        assert!(m("fifo").file_type().is_fifo());
        assert_eq!(m("d/e").mode() & 0o777, 0o500);
        assert_eq!(m("f").mtime_nsec(), sm("f").mtime_nsec());
        assert_eq!(m("d").mtime(), sm("d").mtime());
        let sp = m("sparse");
        assert_eq!(sp.len(), 2 << 20);
        assert!(sp.blocks() * 512 < (1 << 20), "sparse file was filled: {} blocks", sp.blocks());
        let data = fs::read(dst.join("sparse")).unwrap();
        assert_eq!(&data[1 << 20..(1 << 20) + 5], b"xyzzy");
        if is_root() {
            assert_eq!(m("null").rdev(), libc::makedev(1, 3));
            assert!(m("wh").file_type().is_char_device());
            assert_eq!((m("f").uid(), m("f").gid()), (1234, 5678));
            let c = cstr(&dst.join("d")).unwrap();
            let mut v = [0u8; 4];
            let n = unsafe {
                libc::getxattr(c.as_ptr(), c"trusted.overlay.opaque".as_ptr(), v.as_mut_ptr() as *mut _, 4)
            };
            assert_eq!(n, 1);
            assert_eq!(v[0], b'y');
        }
        // make tempdir cleanup possible
        fs::set_permissions(src.join("d/e"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(dst.join("d/e"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn refuses_non_dirs() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        assert!(copy_tree(&t.path().join("f"), &t.path().join("g")).is_err());
        assert!(copy_tree(t.path(), &t.path().join("f")).is_err());
    }
}
