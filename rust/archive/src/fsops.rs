//! File-system operations confined to a root directory.
//!
//! Every path is resolved beneath the root through the root's directory fd
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..` and symlinks
//! (absolute or relative) can't leave it, whatever a concurrent process does
//! to the tree. Only *parent directories* are resolved that way; the final
//! component is always handled with an `*at` call on the parent's fd that
//! doesn't follow symlinks (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `fchmodat2`).
//! No path is ever built by joining strings and opened from `/`.

use crate::error::{show, Ctx, Error, Result};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

/// How many parent dir fds we keep open at most.
const CACHE_MAX: usize = 128;

// ---------------------------------------------------------------------------
// Lexical path handling (no file-system access).

/// Normalise an entry name the way Docker does (`filepath.Clean`, then
/// "is it still beneath the root"): empty and `.` components vanish, `..`
/// pops. An absolute name's `..` stops at `/` (Clean semantics); a relative
/// name that climbs above the root is refused. Returns the components joined
/// by `/` without a leading slash (empty = the root itself).
pub fn clean_entry_name(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.contains(&0) {
        return Err(Error::unsafe_path(format!("entry name contains a NUL byte: {:?}", show(raw))));
    }
    let absolute = raw.first() == Some(&b'/');
    let mut comps: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if comps.pop().is_none() && !absolute {
                    return Err(Error::unsafe_path(format!("{:?} is outside of the target", show(raw))));
                }
            }
            c => comps.push(c),
        }
    }
    Ok(comps.join(&b'/'))
}

/// Normalise a hardlink target: relative to the root (a leading `/` is
/// ignored); climbing above the root is refused (Docker's breakout check).
pub fn clean_link_target(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.contains(&0) {
        return Err(Error::unsafe_path(format!("link target contains a NUL byte: {:?}", show(raw))));
    }
    let mut comps: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if comps.pop().is_none() {
                    return Err(Error::unsafe_path(format!("hardlink target {:?} is outside of the target", show(raw))));
                }
            }
            c => comps.push(c),
        }
    }
    Ok(comps.join(&b'/'))
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
pub fn split_parent(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&p[..0], p),
    }
}

/// Join a relative dir and a name (either may be empty).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut v = Vec::with_capacity(dir.len() + 1 + name.len());
    v.extend_from_slice(dir);
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

// ---------------------------------------------------------------------------
// The confined root.

pub struct Root {
    fd: Rc<OwnedFd>,
    cache: HashMap<Vec<u8>, Rc<OwnedFd>>,
}

fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// `openat2` with a retry on EAGAIN (the kernel asks for one when a rename
/// raced with the lookup).
pub fn openat2_retry(dirfd: BorrowedFd<'_>, path: &[u8], flags: OFlags, resolve: ResolveFlags) -> std::result::Result<OwnedFd, Errno> {
    let mut tries = 0;
    loop {
        match rfs::openat2(dirfd, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN) | Err(Errno::INTR) if tries < 64 => tries += 1,
            r => return r,
        }
    }
}

impl Root {
    /// Open the target directory (the caller's path is trusted; only what is
    /// beneath it is not).
    pub fn open(path: &Path) -> Result<Root> {
        let fd = rfs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .ctx(|| format!("open target {}", path.display()))?;
        Ok(Root { fd: Rc::new(fd), cache: HashMap::new() })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Forget cached directory fds: call after anything was removed or replaced.
    pub fn invalidate(&mut self) {
        self.cache.clear();
    }

    /// Remember `fd` as the directory at `rel` (e.g. one we just created).
    pub fn remember(&mut self, rel: &[u8], fd: Rc<OwnedFd>) {
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(rel.to_vec(), fd);
    }

    /// Resolve the directory `rel` beneath the root (symlinks followed, but
    /// never out of the root). `O_PATH` fd, usable as a dirfd.
    pub fn resolve_dir(&self, rel: &[u8]) -> std::result::Result<OwnedFd, Errno> {
        if rel.is_empty() {
            return rfs::openat(self.fd(), c".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty());
        }
        openat2_retry(self.fd(), rel, OFlags::PATH | OFlags::DIRECTORY, in_root())
    }

    /// Open `rel` for reading its entries (for removal walks).
    pub fn open_dir_rdonly(&self, rel: &[u8]) -> std::result::Result<OwnedFd, Errno> {
        if rel.is_empty() {
            return rfs::openat(self.fd(), c".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty());
        }
        openat2_retry(self.fd(), rel, OFlags::RDONLY | OFlags::DIRECTORY, in_root())
    }

    /// The parent directory `rel` as a dirfd; with `create`, missing
    /// components are made (mode 0755, like Docker's MkdirAll). Returns
    /// `Ok(None)` if it doesn't exist and `create` is false.
    pub fn dir(&mut self, rel: &[u8], create: bool) -> Result<Option<Rc<OwnedFd>>> {
        if rel.is_empty() {
            return Ok(Some(self.fd.clone()));
        }
        if let Some(fd) = self.cache.get(rel) {
            return Ok(Some(fd.clone()));
        }
        match self.resolve_dir(rel) {
            Ok(fd) => {
                let fd = Rc::new(fd);
                self.remember(rel, fd.clone());
                Ok(Some(fd))
            }
            Err(Errno::NOENT) if create => self.mkdir_all(rel).map(Some),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(fs_err(e, || format!("resolve directory {}", show(rel)))),
        }
    }

    fn mkdir_all(&mut self, rel: &[u8]) -> Result<Rc<OwnedFd>> {
        let mut cur = self.fd.clone();
        let mut end = 0;
        for comp in rel.split(|&b| b == b'/') {
            end += comp.len();
            let prefix = &rel[..end];
            end += 1; // the slash
            if comp.is_empty() {
                continue;
            }
            match self.resolve_dir(prefix) {
                Ok(fd) => cur = Rc::new(fd),
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&*cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {
                            // Explicit mode: don't depend on the process umask.
                            let _ = rfs::chmodat(&*cur, comp, Mode::from_raw_mode(0o755), AtFlags::empty());
                        }
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(fs_err(e, || format!("mkdir {}", show(prefix)))),
                    }
                    cur = Rc::new(self.resolve_dir(prefix).map_err(|e| match e {
                        // mkdir said EEXIST yet it can't be resolved: a dangling symlink.
                        Errno::NOENT => Error::corrupt(format!("{}: parent is a dangling symlink", show(prefix))),
                        e => fs_err(e, || format!("resolve directory {}", show(prefix))),
                    })?);
                }
                Err(e) => return Err(fs_err(e, || format!("resolve directory {}", show(prefix)))),
            }
        }
        self.remember(rel, cur.clone());
        Ok(cur)
    }
}

/// Errors caused by the archive's *shape* (a file where a directory is
/// needed, symlink loops, names too long) are corrupt-layer errors; the rest
/// (ENOSPC, EIO, EPERM…) stay OS errors.
pub fn fs_err<F: FnOnce() -> String>(e: Errno, f: F) -> Error {
    match e {
        Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG | Errno::XDEV | Errno::ISDIR | Errno::NOTEMPTY => {
            Error::corrupt(format!("{}: {}", f(), std::io::Error::from(e)))
        }
        _ => Error::io(f(), std::io::Error::from(e)),
    }
}

// ---------------------------------------------------------------------------
// Removal (never follows symlinks).

/// Remove `name` in `dirfd` and everything beneath it; missing is fine.
pub fn remove_all_at(dirfd: BorrowedFd<'_>, name: &[u8]) -> std::result::Result<(), Errno> {
    match rfs::unlinkat(dirfd, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    // A directory (EISDIR on Linux; EPERM on some file systems).
    let sub = match rfs::openat(dirfd, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    empty_dir(sub.as_fd())?;
    drop(sub);
    match rfs::unlinkat(dirfd, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Names in a directory, without `.` and `..`.
pub fn list_dir(fd: BorrowedFd<'_>) -> std::result::Result<Vec<Vec<u8>>, Errno> {
    let mut dir = rfs::Dir::read_from(fd)?;
    let mut names = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push(n.to_vec());
    }
    Ok(names)
}

/// Remove everything inside the directory `fd` (which stays).
pub fn empty_dir(fd: BorrowedFd<'_>) -> std::result::Result<(), Errno> {
    for name in list_dir(fd)? {
        remove_all_at(fd, &name)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Small wrappers.

/// `fchmodat2(dirfd, name, mode, AT_SYMLINK_NOFOLLOW)`: chmod the final
/// component itself, never a symlink's target (Linux ≥ 6.6). Falls back to
/// fstatat + fchmodat on older kernels (refusing symlinks).
pub fn chmod_nofollow(dirfd: BorrowedFd<'_>, name: &[u8], mode: u32) -> std::result::Result<(), Errno> {
    let c = std::ffi::CString::new(name).map_err(|_| Errno::INVAL)?;
    let r = unsafe {
        libc::syscall(libc::SYS_fchmodat2, dirfd.as_raw_fd(), c.as_ptr(), mode as libc::c_uint, libc::AT_SYMLINK_NOFOLLOW)
    };
    if r == 0 {
        return Ok(());
    }
    let e = Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
    if e != Errno::NOSYS {
        return Err(e);
    }
    let st = rfs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(Errno::OPNOTSUPP);
    }
    rfs::chmodat(dirfd, name, Mode::from_raw_mode(mode), AtFlags::empty())
}

/// `/proc/self/fd/<dirfd>/<name>`: a path for the `l*xattr` calls on entries
/// that can't be opened (symlinks, devices, fifos). The magic link pins the
/// parent; the last component is not followed by `l*` calls.
pub fn proc_path(dirfd: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dirfd.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit once (as the Go
/// runtime does), so deep trees don't run out of fds.
pub fn raise_nofile_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| unsafe {
        let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    });
}

/// True when running in a user namespace that isn't the initial one (then
/// device nodes can't be made and overlay uses `user.overlay.*`).
pub fn in_user_ns() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(s) => {
            let f: Vec<&str> = s.split_whitespace().collect();
            !(f.len() == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
        }
        Err(_) => false,
    })
}

/// How many uids and gids this user namespace maps (read once).
pub fn mapped_ids() -> (u64, u64) {
    static V: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        let count = |f: &str| {
            std::fs::read_to_string(f).map_or(0, |s| s.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()).sum())
        };
        (count("/proc/self/uid_map"), count("/proc/self/gid_map"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_names() {
        assert_eq!(clean_entry_name(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(clean_entry_name(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(clean_entry_name(b"/../../etc").unwrap(), b"etc");
        assert_eq!(clean_entry_name(b"a/../b").unwrap(), b"b");
        assert_eq!(clean_entry_name(b".").unwrap(), b"");
        assert_eq!(clean_entry_name(b"./").unwrap(), b"");
        assert!(clean_entry_name(b"../x").is_err());
        assert!(clean_entry_name(b"a/../../x").is_err());
        assert!(clean_entry_name(b"./../x").is_err());
        assert!(clean_entry_name(b"a\0b").is_err());
    }

    #[test]
    fn link_targets() {
        assert_eq!(clean_link_target(b"/etc/shadow").unwrap(), b"etc/shadow");
        assert!(clean_link_target(b"../../x").is_err());
        assert!(clean_link_target(b"/../x").is_err());
        assert_eq!(clean_link_target(b"a/../b").unwrap(), b"b");
    }

    #[test]
    fn split_and_join() {
        assert_eq!(split_parent(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_parent(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(join(b"", b"x"), b"x");
        assert_eq!(join(b"a", b"x"), b"a/x");
    }
}
