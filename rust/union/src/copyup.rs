//! Volume copy-up, as dockerd does it: a new, empty volume mounted over a
//! directory of the image first receives that directory's content.

use crate::copy::{copy_dir_fd, empty_dir, openat, openat2};
use crate::error::{Context, Error, Result};
use crate::sys::{cstr, cvt};
use rustix::fs::{OFlags, ResolveFlags};
use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The crash marker, in the volume's own directory (the parent of `dest`).
pub const MARKER: &CStr = c".copyup-incomplete";

/// What [`copy_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyUp {
    /// `path` doesn't exist in the rootfs: nothing to copy.
    Missing,
    /// `path` is not a directory (dockerd then refuses the mount: "cannot
    /// mount volume over existing file").
    File,
    /// The directory's content is now in `dest`.
    Copied,
    /// `dest` wasn't empty: left as it was.
    Skipped,
}

impl CopyUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyUp::Missing => "missing",
            CopyUp::File => "file",
            CopyUp::Copied => "copied",
            CopyUp::Skipped => "skipped",
        }
    }
}

impl fmt::Display for CopyUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Copy the directory `path` of the container root filesystem `rootfs` into
/// the volume data directory `dest`, exactly (see `copy.rs`: owners, modes
/// incl. setuid/setgid/sticky, xattrs incl. `security.capability`, times,
/// symlinks as symlinks, hardlinks within the tree as hardlinks, devices,
/// fifos, sparse files; data reflinked or copied in-kernel), and give `dest`
/// itself the directory's owner, mode, xattrs and times.
///
/// `path` (e.g. "/var/lib/db") is resolved beneath `rootfs` with
/// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: symlinks, also the last
/// component, resolve as if `rootfs` were `/` and never leave it. Everything
/// beneath is then reached through directory fds, never followed symlinks;
/// everything in `dest` is created through fds beneath `dest`.
///
/// Returns [`CopyUp::Missing`] if `path` doesn't exist, [`CopyUp::File`] if it
/// isn't a directory, [`CopyUp::Skipped`] if `dest` isn't empty (a volume
/// with content is never copied into), [`CopyUp::Copied`] otherwise. Any
/// other lookup failure (ENOTDIR for a component that is a file, ELOOP...)
/// is an error, as in dockerd.
///
/// Crash safety: before the first write into `dest`, the marker file
/// [`MARKER`] is created in `dest`'s parent (the volume's own directory) and
/// that directory fsynced; it is removed (and the directory fsynced again)
/// only after the whole copy is done and `syncfs` has made `dest`'s
/// filesystem durable. A call that finds the marker present empties `dest`
/// first (its content is a partial copy) and then proceeds as for an empty
/// volume (copies again, or only removes the marker if `path` is now
/// missing or a file). So a volume whose marker is present holds no user
/// data yet, and must not be handed to a container before `copy_up` has run
/// on it again. On a copy error `dest` is emptied and the marker removed
/// (best effort: if that fails, the marker stays and the next call redoes).
///
/// Concurrent calls for the same volume are serialised with an exclusive
/// `flock` on the volume's directory: the second one finds `dest` filled
/// and returns [`CopyUp::Skipped`].
pub fn copy_up(rootfs: &Path, path: &Path, dest: &Path) -> Result<CopyUp> {
    let dfd = open(dest, libc::O_RDONLY | libc::O_DIRECTORY)?;
    let vol_name = dest.join("..");
    let vol = openat(dfd.as_fd(), c"..", libc::O_RDONLY | libc::O_DIRECTORY, 0).ctx("open", &vol_name)?;
    loop {
        match cvt(unsafe { libc::flock(vol.as_raw_fd(), libc::LOCK_EX) }) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => {
                r.ctx("flock", &vol_name)?;
                break;
            }
        }
    }
    let marker = exists_at(vol.as_fd(), MARKER).ctx("stat", &vol_name.join(".copyup-incomplete"))?;
    if marker {
        empty_dir(dfd.as_fd(), dest)?;
    }

    let root = open(rootfs, libc::O_PATH | libc::O_DIRECTORY)?;
    let rel = path.as_os_str().as_bytes();
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    let src_name = rootfs.join(path.strip_prefix("/").unwrap_or(path));
    let src = match openat2(root.as_fd(), rel, OFlags::PATH, ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS) {
        Ok(fd) => Some(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) => return Err(Error::io("open", &src_name, e)),
    };
    let src = match src {
        Some(fd) if is_dir(fd.as_fd()).ctx("stat", &src_name)? => fd,
        other => {
            if marker {
                remove_marker(vol.as_fd(), &vol_name)?;
            }
            return Ok(if other.is_none() { CopyUp::Missing } else { CopyUp::File });
        }
    };
    if !marker && !is_empty(dfd.as_fd()).ctx("readdir", dest)? {
        return Ok(CopyUp::Skipped);
    }

    if !marker {
        openat(vol.as_fd(), MARKER, libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW, 0o600)
            .ctx("create", &vol_name.join(".copyup-incomplete"))?;
        cvt(unsafe { libc::fsync(vol.as_raw_fd()) }).ctx("fsync", &vol_name)?;
    }
    let copied = openat(src.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .ctx("open", &src_name)
        .and_then(|s| flushing(dfd.as_fd(), || copy_dir_fd(s, dfd.try_clone().ctx("dup", dest)?, &src_name, dest)))
        .and_then(|()| cvt(unsafe { libc::syncfs(dfd.as_raw_fd()) }).ctx("syncfs", dest).map(drop));
    match copied {
        Ok(()) => {
            remove_marker(vol.as_fd(), &vol_name)?;
            Ok(CopyUp::Copied)
        }
        Err(e) => {
            if empty_dir(dfd.as_fd(), dest).is_ok() {
                let _ = remove_marker(vol.as_fd(), &vol_name);
            }
            Err(e)
        }
    }
}

/// Run `copy` while another thread flushes `fd`'s filesystem every few
/// milliseconds: the data is written out as it is copied, and the syncfs
/// that must end the copy (before the marker goes) finds little left to do.
fn flushing<T>(fd: BorrowedFd<'_>, copy: impl FnOnce() -> T) -> T {
    let done = Mutex::new(false);
    let wake = Condvar::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut stop = done.lock().unwrap();
            while !*stop {
                drop(stop);
                unsafe { libc::syncfs(fd.as_raw_fd()) };
                stop = wake.wait_timeout(done.lock().unwrap(), Duration::from_millis(20)).unwrap().0;
            }
        });
        let r = copy();
        *done.lock().unwrap() = true;
        wake.notify_all();
        r
    })
}

fn open(p: &Path, flags: libc::c_int) -> Result<OwnedFd> {
    let c = cstr(p).ctx("open", p)?;
    let fd = cvt(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) }).ctx("open", p)?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat(fd: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstatat(fd.as_raw_fd(), name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

fn is_dir(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(stat(fd, c"", libc::AT_EMPTY_PATH)?.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

fn exists_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    match stat(dir, name, libc::AT_SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_empty(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let fd = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut d = rustix::fs::Dir::new(fd)?;
    while let Some(e) = d.read() {
        if !matches!(e?.file_name().to_bytes(), b"." | b"..") {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Unlink the marker and make that durable: a marker that came back after a
/// crash would have the next call empty a volume holding user data.
fn remove_marker(vol: BorrowedFd<'_>, vol_name: &Path) -> Result<()> {
    match cvt(unsafe { libc::unlinkat(vol.as_raw_fd(), MARKER.as_ptr(), 0) }) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
            return Err(Error::io("unlink", &vol_name.join(".copyup-incomplete"), e))
        }
        _ => {}
    }
    cvt(unsafe { libc::fsync(vol.as_raw_fd()) }).ctx("fsync", vol_name).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::ffi::CString;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    fn is_root() -> bool {
        unsafe { libc::geteuid() == 0 }
    }

    fn c(p: &Path) -> CString {
        cstr(p).unwrap()
    }

    fn lsetxattr(p: &Path, name: &str, v: &[u8]) {
        let n = CString::new(name).unwrap();
        let r = unsafe { libc::lsetxattr(c(p).as_ptr(), n.as_ptr(), v.as_ptr() as *const _, v.len(), 0) };
        assert_eq!(r, 0, "lsetxattr {name} on {}: {}", p.display(), io::Error::last_os_error());
    }

    fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
        let cp = c(p);
        let mut buf = vec![0u8; 4096];
        let n = unsafe { libc::llistxattr(cp.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
        assert!(n >= 0, "llistxattr {}", p.display());
        buf.truncate(n as usize);
        let mut out = BTreeMap::new();
        for name in buf.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let cn = CString::new(name).unwrap();
            let mut v = vec![0u8; 4096];
            let k = unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), v.as_mut_ptr() as *mut _, v.len()) };
            assert!(k >= 0);
            v.truncate(k as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), v);
        }
        out
    }

    /// Everything about a tree that a copy must keep, by relative path;
    /// hardlinks as the set of paths sharing an inode.
    fn describe(root: &Path) -> (Vec<String>, Vec<Vec<String>>) {
        let mut lines = Vec::new();
        let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        fn walk(root: &Path, rel: &Path, lines: &mut Vec<String>, inodes: &mut BTreeMap<u64, Vec<String>>) {
            let p = root.join(rel);
            let m = fs::symlink_metadata(&p).unwrap();
            let link = if m.file_type().is_symlink() { fs::read_link(&p).unwrap().display().to_string() } else { String::new() };
            let data = if m.file_type().is_file() { fs::read(&p).unwrap() } else { Vec::new() };
            let mtime = if m.is_dir() && rel.as_os_str().is_empty() { 0 } else { m.mtime() * 1_000_000_000 + m.mtime_nsec() };
            lines.push(format!(
                "{} mode={:o} uid={} gid={} nlink={} rdev={} size={} mtime={} link={} data={:?} xattrs={:?}",
                rel.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                if m.is_dir() { 0 } else { m.nlink() },
                m.rdev(),
                if m.is_dir() { 0 } else { m.len() },
                mtime,
                link,
                data,
                xattrs(&p),
            ));
            if !m.is_dir() && m.nlink() > 1 {
                inodes.entry(m.ino()).or_default().push(rel.display().to_string());
            }
            if m.is_dir() {
                let mut names: Vec<_> = fs::read_dir(&p).unwrap().map(|e| e.unwrap().file_name()).collect();
                names.sort();
                for n in names {
                    walk(root, &rel.join(n), lines, inodes);
                }
            }
        }
        walk(root, Path::new(""), &mut lines, &mut inodes);
        let mut links: Vec<Vec<String>> = inodes.into_values().collect();
        links.sort();
        (lines, links)
    }

    /// A rootfs with /var/lib/db holding one of everything.
    fn rootfs(t: &Path) -> PathBuf {
        let r = t.join("rootfs");
        let db = r.join("var/lib/db");
        fs::create_dir_all(db.join("a/b/c")).unwrap();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("etc/passwd"), "root:x:0:0:rootfs\n").unwrap();
        fs::write(r.join("ROOTFS"), "this rootfs").unwrap();
        symlink("/", r.join("slash")).unwrap();
        symlink("../../../../", r.join("up")).unwrap();
        fs::write(db.join("a/b/c/deep"), vec![7u8; 3000]).unwrap();
        fs::write(db.join("suid"), "#!/bin/sh\n").unwrap();
        fs::write(db.join("hl1"), "linked").unwrap();
        fs::hard_link(db.join("hl1"), db.join("a/hl2")).unwrap();
        fs::hard_link(db.join("hl1"), db.join("hl3")).unwrap();
        symlink("/etc/passwd", db.join("passwd")).unwrap();
        symlink("../../..", db.join("a/up")).unwrap();
        let fifo = c(&db.join("fifo"));
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
        let null = c(&db.join("null"));
        assert_eq!(unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) }, 0);
        fs::write(db.join("capped"), "bin").unwrap();
        lsetxattr(&db.join("capped"), "user.x", b"hello");
        // v2 capability: effective, cap_net_bind_service permitted.
        let mut cap = Vec::new();
        for w in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
            cap.extend_from_slice(&w.to_le_bytes());
        }
        lsetxattr(&db.join("capped"), "security.capability", &cap);
        lsetxattr(&db.join("passwd"), "trusted.on-symlink", b"s");
        lsetxattr(&db.join("fifo"), "trusted.on-fifo", b"f");
        lsetxattr(&db, "user.root", b"r");
        std::os::unix::fs::lchown(db.join("a"), Some(33), Some(44)).unwrap();
        std::os::unix::fs::lchown(db.join("passwd"), Some(55), Some(66)).unwrap();
        std::os::unix::fs::lchown(db.join("suid"), Some(1000), Some(1000)).unwrap();
        fs::set_permissions(db.join("suid"), fs::Permissions::from_mode(0o6755)).unwrap();
        fs::set_permissions(db.join("a/b"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::set_permissions(db.join("a/b/c"), fs::Permissions::from_mode(0o500)).unwrap();
        std::os::unix::fs::lchown(&db, Some(1000), Some(1000)).unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o700)).unwrap();
        r
    }

    fn volume(t: &Path, name: &str) -> PathBuf {
        let d = t.join(name).join("_data");
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn marker(dest: &Path) -> PathBuf {
        dest.parent().unwrap().join(".copyup-incomplete")
    }

    #[test]
    fn copies_exactly() {
        if !is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let r = rootfs(t.path());
        let dest = volume(t.path(), "v");
        assert_eq!(copy_up(&r, Path::new("/var/lib/db"), &dest).unwrap(), CopyUp::Copied);
        let (src, src_links) = describe(&r.join("var/lib/db"));
        let (dst, dst_links) = describe(&dest);
        assert_eq!(src, dst);
        assert_eq!(src_links, dst_links);
        assert_eq!(src_links, vec![vec!["a/hl2".to_string(), "hl1".into(), "hl3".into()]]);
        let m = fs::symlink_metadata(&dest).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1000, 0o700));
        assert_eq!(fs::read_link(dest.join("passwd")).unwrap(), Path::new("/etc/passwd"));
        assert!(!marker(&dest).exists());
        // A second call: the volume has content now.
        assert_eq!(copy_up(&r, Path::new("/var/lib/db"), &dest).unwrap(), CopyUp::Skipped);
        fs::set_permissions(r.join("var/lib/db/a/b/c"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(dest.join("a/b/c"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn symlinks_resolve_inside_the_rootfs() {
        if !is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let r = rootfs(t.path());
        for p in ["/slash", "/up", "up/../../..", "/up/up/var/../var/lib/db/a/up/.."] {
            let dest = volume(t.path(), &format!("v{}", p.len()));
            assert_eq!(copy_up(&r, Path::new(p), &dest).unwrap(), CopyUp::Copied, "{p}");
            assert_eq!(fs::read_to_string(dest.join("ROOTFS")).unwrap(), "this rootfs", "{p}");
            assert_eq!(fs::read_to_string(dest.join("etc/passwd")).unwrap(), "root:x:0:0:rootfs\n", "{p}");
            fs::set_permissions(dest.join("var/lib/db/a/b/c"), fs::Permissions::from_mode(0o700)).unwrap();
        }
        // Through a symlink inside the tree: db/a/up = ../../.. = /var.
        let dest = volume(t.path(), "via");
        assert_eq!(copy_up(&r, Path::new("/var/lib/db/a/up/lib/db/a"), &dest).unwrap(), CopyUp::Copied);
        assert_eq!(fs::read_to_string(dest.join("hl2")).unwrap(), "linked");
        // The absolute symlink names the rootfs's /etc/passwd: a file.
        let dest = volume(t.path(), "pw");
        assert_eq!(copy_up(&r, Path::new("/var/lib/db/passwd"), &dest).unwrap(), CopyUp::File);
        fs::set_permissions(r.join("var/lib/db/a/b/c"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn missing_file_skipped() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("rootfs");
        fs::create_dir_all(r.join("data/sub")).unwrap();
        fs::write(r.join("data/f"), "image").unwrap();
        fs::write(r.join("file"), "x").unwrap();
        let dest = volume(t.path(), "v");
        assert_eq!(copy_up(&r, Path::new("/nope"), &dest).unwrap(), CopyUp::Missing);
        assert_eq!(copy_up(&r, Path::new("/nope/deeper"), &dest).unwrap(), CopyUp::Missing);
        assert_eq!(copy_up(&r, Path::new("/file"), &dest).unwrap(), CopyUp::File);
        let e = copy_up(&r, Path::new("/file/x"), &dest).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOTDIR));
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
        assert!(!marker(&dest).exists());

        fs::write(dest.join("mine"), "user data").unwrap();
        let before = fs::symlink_metadata(&dest).unwrap();
        assert_eq!(copy_up(&r, Path::new("/data"), &dest).unwrap(), CopyUp::Skipped);
        let after = fs::symlink_metadata(&dest).unwrap();
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 1);
        assert_eq!(fs::read_to_string(dest.join("mine")).unwrap(), "user data");
        assert_eq!((before.mode(), before.mtime_nsec()), (after.mode(), after.mtime_nsec()));
        assert!(!marker(&dest).exists());
    }

    #[test]
    fn marker_means_redo() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("rootfs");
        fs::create_dir_all(r.join("data/sub")).unwrap();
        fs::write(r.join("data/sub/f"), "image").unwrap();
        let dest = volume(t.path(), "v");
        // A partial copy left by a crash.
        fs::create_dir_all(dest.join("sub/half")).unwrap();
        fs::write(dest.join("sub/half/junk"), "partial").unwrap();
        fs::set_permissions(dest.join("sub/half"), fs::Permissions::from_mode(0o500)).unwrap();
        symlink("/", dest.join("sub/root")).unwrap();
        fs::write(marker(&dest), "").unwrap();
        assert_eq!(copy_up(&r, Path::new("/data"), &dest).unwrap(), CopyUp::Copied);
        assert!(!marker(&dest).exists());
        let mut names: Vec<_> = fs::read_dir(dest.join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, vec!["f"]);
        assert_eq!(fs::read_to_string(dest.join("sub/f")).unwrap(), "image");

        // Marker, but the path is gone now: emptied, marker removed.
        fs::write(dest.join("junk"), "partial").unwrap();
        fs::write(marker(&dest), "").unwrap();
        assert_eq!(copy_up(&r, Path::new("/gone"), &dest).unwrap(), CopyUp::Missing);
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
        assert!(!marker(&dest).exists());
    }

    #[test]
    fn empty_source_dir_sets_the_root() {
        if !is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("rootfs");
        fs::create_dir_all(r.join("empty")).unwrap();
        std::os::unix::fs::lchown(r.join("empty"), Some(999), Some(999)).unwrap();
        fs::set_permissions(r.join("empty"), fs::Permissions::from_mode(0o2750)).unwrap();
        let dest = volume(t.path(), "v");
        assert_eq!(copy_up(&r, Path::new("/empty"), &dest).unwrap(), CopyUp::Copied);
        let m = fs::symlink_metadata(&dest).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (999, 999, 0o2750));
    }
}
