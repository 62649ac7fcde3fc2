//! Exact tree copies (the vfs driver's layers, and volume copy-up in
//! `copyup.rs`): owners, modes incl. setuid, xattrs incl. `trusted.*` and
//! `security.capability`, hardlinks, symlinks, devices, fifos, sockets,
//! sparse files and timestamps. File data is reflinked (FICLONE) when the
//! filesystem can, otherwise copied in-kernel with copy_file_range, data
//! segment by data segment so holes stay holes.
//!
//! The walk works on directory fds only: every source entry is reached with
//! an `*at` call on its parent's fd that never follows a symlink
//! (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`), and every destination entry is
//! created the same way beneath the destination's fd. No path is built by
//! joining strings and opened again, so a symlink swapped into either tree
//! meanwhile can't redirect the copy. Non-regular files are opened `O_PATH`
//! only (a device node or fifo is never really opened); their xattrs and
//! modes go through `/proc/self/fd/N`, which names the inode itself.
//!
//! Symlinks in the source are never followed; the destination is a tree this
//! call creates.

use crate::error::{Context, Error, Result};
use crate::sys::{cvt, cvt_l};
use rustix::fs::{self as rfs, Dir, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            rfs::mkdir(dst, Mode::from_raw_mode(0o700)).map_err(io::Error::from).ctx("mkdir", dst)?
        }
        Err(e) => return Err(Error::io("stat", dst, e)),
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let s = rfs::open(src, flags, Mode::empty()).map_err(io::Error::from).ctx("open", src)?;
    let d = rfs::open(dst, flags, Mode::empty()).map_err(io::Error::from).ctx("open", dst)?;
    copy_dir_fd(s, d, src, dst)
}

/// Copy the contents of the open directory `src` (an `O_RDONLY` directory fd)
/// into the open directory `dst`, then give `dst` the owner, xattrs, mode and
/// times of `src`. `src_name` and `dst_name` only name the trees in errors.
pub(crate) fn copy_dir_fd(src: OwnedFd, dst: OwnedFd, src_name: &Path, dst_name: &Path) -> Result<()> {
    let st = fstat(src.as_fd()).ctx("stat", src_name)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::io("copy", src_name, io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    let dst_root = dst.try_clone().ctx("dup", dst_name)?;
    let mut c = Copier {
        links: HashMap::new(),
        no_reflink: false,
        buf: Vec::new(),
        src_name: src_name.to_path_buf(),
        dst_name: dst_name.to_path_buf(),
        dst_root,
        rel: PathBuf::new(),
    };
    c.dir(src, dst, &st)
}

struct Copier {
    /// (dev, ino) of a multiply-linked source file → its first copy: the
    /// directory (relative to the destination root) and the name in it.
    links: HashMap<(u64, u64), (PathBuf, CString)>,
    /// FICLONE failed once with "not supported": don't try again.
    no_reflink: bool,
    buf: Vec<u8>,
    /// The trees' names, for errors only.
    src_name: PathBuf,
    dst_name: PathBuf,
    /// The destination root, to reach a hardlink's first copy.
    dst_root: OwnedFd,
    /// The directory being copied, relative to both roots.
    rel: PathBuf,
}

const NOFOLLOW: libc::c_int = libc::AT_SYMLINK_NOFOLLOW;

fn errno() -> io::Error {
    io::Error::last_os_error()
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

fn fstatat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

/// `openat` (always `O_CLOEXEC`), retried on EINTR.
pub(crate) fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    loop {
        let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
        if fd >= 0 {
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = errno();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `openat2` with `resolve`, retried on EAGAIN (a rename raced with the
/// lookup) and EINTR.
pub(crate) fn openat2(dir: BorrowedFd<'_>, path: &[u8], flags: OFlags, resolve: ResolveFlags) -> io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match rfs::openat2(dir, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN) | Err(Errno::INTR) if tries < 64 => tries += 1,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// "/proc/self/fd/N": names the inode of `fd` itself (an `O_PATH` fd of a
/// symlink included) for the calls that have no fd form for such fds.
fn proc_fd(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL")
}

fn same(a: &libc::stat, b: &libc::stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_mode & libc::S_IFMT == b.st_mode & libc::S_IFMT
}

fn changed() -> io::Error {
    io::Error::other("changed while being copied")
}

fn is_dot(name: &CStr) -> bool {
    matches!(name.to_bytes(), b"." | b"..")
}

/// The entries of a directory, without "." and "..".
pub(crate) fn read_names(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let fd = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut d = Dir::new(fd)?;
    let mut v = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        if !is_dot(e.file_name()) {
            v.push(e.file_name().to_owned());
        }
    }
    Ok(v)
}

impl Copier {
    fn src_path(&self, name: &CStr) -> PathBuf {
        self.src_name.join(&self.rel).join(OsStr::from_bytes(name.to_bytes()))
    }

    fn dst_path(&self, name: &CStr) -> PathBuf {
        self.dst_name.join(&self.rel).join(OsStr::from_bytes(name.to_bytes()))
    }

    fn dir(&mut self, src: OwnedFd, dst: OwnedFd, st: &libc::stat) -> Result<()> {
        let mut rd = Dir::new(src).map_err(io::Error::from).ctx("readdir", &self.src_name.join(&self.rel))?;
        while let Some(ent) = rd.read() {
            let ent = ent.map_err(io::Error::from).ctx("readdir", &self.src_name.join(&self.rel))?;
            let name = ent.file_name();
            if is_dot(name) {
                continue;
            }
            let sdir = rd.fd().expect("Dir::fd");
            self.entry(sdir, dst.as_fd(), name)?;
        }
        // Last, so read-only dirs can be filled and mtimes stay.
        let sdir = rd.fd().expect("Dir::fd");
        let (sp, dp) = (self.src_name.join(&self.rel), self.dst_name.join(&self.rel));
        set_meta_fd(sdir, dst.as_fd(), st, &sp, &dp)
    }

    fn entry(&mut self, sdir: BorrowedFd<'_>, ddir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        let st = fstatat(sdir, name, NOFOLLOW).ctx("stat", &self.src_path(name))?;
        let ft = st.st_mode & libc::S_IFMT;
        if ft != libc::S_IFDIR && st.st_nlink > 1 {
            let key = (st.st_dev as u64, st.st_ino as u64);
            if let Some((rel, first)) = self.links.get(&key) {
                return self.link(rel.clone(), first.clone(), ddir, name);
            }
            self.links.insert(key, (self.rel.clone(), name.to_owned()));
        }
        match ft {
            libc::S_IFDIR => {
                let s = openat(sdir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
                    .ctx("open", &self.src_path(name))?;
                let sst = fstat(s.as_fd()).ctx("stat", &self.src_path(name))?;
                cvt(unsafe { libc::mkdirat(ddir.as_raw_fd(), name.as_ptr(), 0o700) }).ctx("mkdir", &self.dst_path(name))?;
                let d = openat(ddir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
                    .ctx("open", &self.dst_path(name))?;
                self.rel.push(OsStr::from_bytes(name.to_bytes()));
                let r = self.dir(s, d, &sst);
                self.rel.pop();
                r
            }
            libc::S_IFREG => self.file(sdir, ddir, name, &st),
            libc::S_IFLNK => self.symlink(sdir, ddir, name, &st),
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO | libc::S_IFSOCK => self.special(sdir, ddir, name, &st),
            _ => Err(Error::io(
                "copy",
                &self.src_path(name),
                io::Error::new(io::ErrorKind::Unsupported, "unknown file type"),
            )),
        }
    }

    /// A further link to a file already copied: `first` in the destination
    /// directory `rel`, reached beneath the destination root without
    /// following symlinks.
    fn link(&self, rel: PathBuf, first: CString, ddir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        let parent;
        let pfd = if rel == self.rel {
            ddir
        } else if rel.as_os_str().is_empty() {
            self.dst_root.as_fd()
        } else {
            parent = openat2(
                self.dst_root.as_fd(),
                rel.as_os_str().as_bytes(),
                OFlags::PATH | OFlags::DIRECTORY,
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            )
            .ctx("link", &self.dst_path(name))?;
            parent.as_fd()
        };
        cvt(unsafe { libc::linkat(pfd.as_raw_fd(), first.as_ptr(), ddir.as_raw_fd(), name.as_ptr(), 0) })
            .ctx("link", &self.dst_path(name))
            .map(drop)
    }

    fn file(&mut self, sdir: BorrowedFd<'_>, ddir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> Result<()> {
        // O_NONBLOCK: should a fifo be swapped in, opening it doesn't hang
        // (and it is refused below).
        let fl = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        let src = openat(sdir, name, fl | libc::O_NOATIME, 0)
            .or_else(|_| openat(sdir, name, fl, 0))
            .ctx("open", &self.src_path(name))?;
        let m = fstat(src.as_fd()).ctx("stat", &self.src_path(name))?;
        if !same(&m, st) {
            return Err(Error::io("open", &self.src_path(name), changed()));
        }
        let dst = openat(ddir, name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, 0o600)
            .ctx("create", &self.dst_path(name))?;
        let size = m.st_size as u64;
        if size > 0 && !self.reflink(&src, &dst) {
            let end = self.data(src.as_raw_fd(), dst.as_raw_fd(), size).ctx("copy", &self.dst_path(name))?;
            if end < size {
                // A trailing hole (or the file shrank): the size still is `size`.
                cvt(unsafe { libc::ftruncate(dst.as_raw_fd(), size as libc::off_t) })
                    .ctx("truncate", &self.dst_path(name))?;
            }
        }
        set_meta_fd(src.as_fd(), dst.as_fd(), &m, &self.src_path(name), &self.dst_path(name))
    }

    fn reflink(&mut self, src: &OwnedFd, dst: &OwnedFd) -> bool {
        if self.no_reflink {
            return false;
        }
        let r = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
        if r == 0 {
            return true;
        }
        match errno().raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) | Some(libc::ENOSYS) => self.no_reflink = true,
            _ => {} // EXDEV, EINVAL...: this pair can't, others may
        }
        false
    }

    fn symlink(&mut self, sdir: BorrowedFd<'_>, ddir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> Result<()> {
        let (sp, dp) = (self.src_path(name), self.dst_path(name));
        let src = openat(sdir, name, libc::O_PATH | libc::O_NOFOLLOW, 0).ctx("open", &sp)?;
        let m = fstat(src.as_fd()).ctx("stat", &sp)?;
        if !same(&m, st) {
            return Err(Error::io("open", &sp, changed()));
        }
        let target = rfs::readlinkat(src.as_fd(), c"", Vec::new()).map_err(io::Error::from).ctx("readlink", &sp)?;
        cvt(unsafe { libc::symlinkat(target.as_ptr(), ddir.as_raw_fd(), name.as_ptr()) }).ctx("symlink", &dp)?;
        cvt(unsafe { libc::fchownat(ddir.as_raw_fd(), name.as_ptr(), m.st_uid, m.st_gid, NOFOLLOW) }).ctx("chown", &dp)?;
        let sx = Xattrs::Path(proc_fd(src.as_fd()));
        let names = list_xattrs(&sx).ctx("listxattr", &sp)?;
        if !names.is_empty() {
            let dst = openat(ddir, name, libc::O_PATH | libc::O_NOFOLLOW, 0).ctx("open", &dp)?;
            copy_xattrs(&sx, &Xattrs::Path(proc_fd(dst.as_fd())), &names, &sp, &dp)?;
        }
        set_times_at(ddir, name, &m).ctx("utimes", &dp)
    }

    /// Devices, fifos, sockets: made with mknod, never opened for I/O.
    fn special(&mut self, sdir: BorrowedFd<'_>, ddir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> Result<()> {
        let (sp, dp) = (self.src_path(name), self.dst_path(name));
        let src = openat(sdir, name, libc::O_PATH | libc::O_NOFOLLOW, 0).ctx("open", &sp)?;
        let m = fstat(src.as_fd()).ctx("stat", &sp)?;
        if !same(&m, st) {
            return Err(Error::io("open", &sp, changed()));
        }
        cvt(unsafe { libc::mknodat(ddir.as_raw_fd(), name.as_ptr(), m.st_mode, m.st_rdev) }).ctx("mknod", &dp)?;
        let dst = openat(ddir, name, libc::O_PATH | libc::O_NOFOLLOW, 0).ctx("open", &dp)?;
        let dpath = proc_fd(dst.as_fd());
        // Owner, then xattrs (chown drops security.capability), then mode, then times.
        cvt(unsafe { libc::fchownat(dst.as_raw_fd(), c"".as_ptr(), m.st_uid, m.st_gid, libc::AT_EMPTY_PATH) })
            .ctx("chown", &dp)?;
        let sx = Xattrs::Path(proc_fd(src.as_fd()));
        let names = list_xattrs(&sx).ctx("listxattr", &sp)?;
        copy_xattrs(&sx, &Xattrs::Path(dpath.clone()), &names, &sp, &dp)?;
        cvt(unsafe { libc::chmod(dpath.as_ptr(), m.st_mode & 0o7777) }).ctx("chmod", &dp)?;
        set_times_at(ddir, name, &m).ctx("utimes", &dp)
    }

    /// Copy the data segments of `src` (skipping holes). Returns the end of
    /// the last one written (the destination's size now).
    fn data(&mut self, sfd: RawFd, dfd: RawFd, size: u64) -> io::Result<u64> {
        let mut off: i64 = 0;
        let mut written: i64 = 0;
        let size = size as i64;
        while off < size {
            let start = unsafe { libc::lseek(sfd, off, libc::SEEK_DATA) };
            let (start, end) = if start < 0 {
                match errno().raw_os_error() {
                    Some(libc::ENXIO) => break, // only a hole is left
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => (off, size),
                    _ => return Err(errno()),
                }
            } else {
                let end = unsafe { libc::lseek(sfd, start, libc::SEEK_HOLE) };
                (start, if end < 0 { size } else { end.min(size) })
            };
            written = self.range(sfd, dfd, start, end)?;
            off = end;
        }
        Ok(written as u64)
    }

    /// Copy [start, end); returns where the copy stopped (`end` unless the
    /// file shrank under us).
    fn range(&mut self, sfd: i32, dfd: i32, start: i64, end: i64) -> io::Result<i64> {
        let mut so: libc::loff_t = start;
        let mut dof: libc::loff_t = start;
        while so < end {
            let n = unsafe { libc::copy_file_range(sfd, &mut so, dfd, &mut dof, (end - so) as usize, 0) };
            if n < 0 {
                match errno().raw_os_error() {
                    Some(libc::EXDEV) | Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                        return self.rw(sfd, dfd, so, end);
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(errno()),
                }
            }
            if n == 0 {
                break; // file shrank under us
            }
        }
        Ok(dof)
    }

    fn rw(&mut self, sfd: i32, dfd: i32, mut off: i64, end: i64) -> io::Result<i64> {
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
        Ok(off)
    }
}

fn timespecs(m: &libc::stat) -> [libc::timespec; 2] {
    [
        libc::timespec { tv_sec: m.st_atime as _, tv_nsec: m.st_atime_nsec as _ },
        libc::timespec { tv_sec: m.st_mtime as _, tv_nsec: m.st_mtime_nsec as _ },
    ]
}

fn set_times_at(dir: BorrowedFd<'_>, name: &CStr, m: &libc::stat) -> io::Result<()> {
    let ts = timespecs(m);
    cvt(unsafe { libc::utimensat(dir.as_raw_fd(), name.as_ptr(), ts.as_ptr(), NOFOLLOW) }).map(drop)
}

/// For a regular file or directory open for I/O: owner, then xattrs (chown
/// drops security.capability), then mode (chown drops setuid/setgid), then
/// times.
pub(crate) fn set_meta_fd(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, m: &libc::stat, sp: &Path, dp: &Path) -> Result<()> {
    cvt(unsafe { libc::fchown(dst.as_raw_fd(), m.st_uid, m.st_gid) }).ctx("chown", dp)?;
    let sx = Xattrs::Fd(src);
    let names = list_xattrs(&sx).ctx("listxattr", sp)?;
    copy_xattrs(&sx, &Xattrs::Fd(dst), &names, sp, dp)?;
    cvt(unsafe { libc::fchmod(dst.as_raw_fd(), m.st_mode & 0o7777) }).ctx("chmod", dp)?;
    let ts = timespecs(m);
    cvt(unsafe { libc::futimens(dst.as_raw_fd(), ts.as_ptr()) }).ctx("utimes", dp)?;
    Ok(())
}

/// Where xattrs are read or written: an fd open for I/O, or a path that is
/// followed (`/proc/self/fd/N` of an `O_PATH` fd).
enum Xattrs<'a> {
    Fd(BorrowedFd<'a>),
    Path(CString),
}

impl Xattrs<'_> {
    fn list(&self, buf: &mut [u8]) -> libc::ssize_t {
        let (p, n) = (buf.as_mut_ptr() as *mut libc::c_char, buf.len());
        match self {
            Xattrs::Fd(fd) => unsafe { libc::flistxattr(fd.as_raw_fd(), p, n) },
            Xattrs::Path(c) => unsafe { libc::listxattr(c.as_ptr(), p, n) },
        }
    }

    fn get(&self, name: &[u8], buf: &mut [u8]) -> libc::ssize_t {
        let (p, n) = (buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        let name = name.as_ptr() as *const libc::c_char;
        match self {
            Xattrs::Fd(fd) => unsafe { libc::fgetxattr(fd.as_raw_fd(), name, p, n) },
            Xattrs::Path(c) => unsafe { libc::getxattr(c.as_ptr(), name, p, n) },
        }
    }

    fn set(&self, name: &[u8], v: &[u8]) -> libc::c_int {
        let (p, n) = (v.as_ptr() as *const libc::c_void, v.len());
        let name = name.as_ptr() as *const libc::c_char;
        match self {
            Xattrs::Fd(fd) => unsafe { libc::fsetxattr(fd.as_raw_fd(), name, p, n, 0) },
            Xattrs::Path(c) => unsafe { libc::setxattr(c.as_ptr(), name, p, n, 0) },
        }
    }
}

/// The xattr names of `x`, each NUL-terminated, back to back (empty if none,
/// or if the filesystem has no xattrs).
fn list_xattrs(x: &Xattrs<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = x.list(&mut buf);
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        match errno().raw_os_error() {
            Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
            Some(libc::ERANGE) => {
                let n = x.list(&mut []);
                if n < 0 {
                    return Err(errno());
                }
                buf = vec![0u8; n as usize + 64]; // may grow meanwhile: loop
            }
            _ => return Err(errno()),
        }
    }
}

fn copy_xattrs(src: &Xattrs<'_>, dst: &Xattrs<'_>, names: &[u8], sp: &Path, dp: &Path) -> Result<()> {
    let mut v = Vec::new();
    for name in names.split_inclusive(|&b| b == 0).filter(|n| n.len() > 1 && n.ends_with(&[0])) {
        v.resize(256, 0);
        let value = loop {
            let n = src.get(name, &mut v);
            if n >= 0 {
                v.truncate(n as usize);
                break true;
            }
            match errno().raw_os_error() {
                Some(libc::ENODATA) => break false,
                Some(libc::ERANGE) => {
                    let n = src.get(name, &mut []);
                    if n < 0 {
                        let e = errno();
                        if e.raw_os_error() == Some(libc::ENODATA) {
                            break false;
                        }
                        return Err(Error::io("getxattr", sp, e));
                    }
                    v.resize(n as usize + 64, 0);
                }
                _ => return Err(Error::io("getxattr", sp, errno())),
            }
        };
        if !value {
            continue;
        }
        if dst.set(name, &v) < 0 {
            let e = errno();
            let shown = String::from_utf8_lossy(&name[..name.len() - 1]);
            return Err(Error::Io {
                op: "setxattr",
                path: dp.to_path_buf(),
                source: io::Error::new(e.kind(), format!("{shown}: {e}")),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::cstr;
    use std::fs::File;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

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
