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
//! call creates, or, with [`Policy::merge`], one it fills as an untar would.

use crate::error::{Context, Error, Result};
use crate::sys::{cvt, cvt_l};
use rustix::fs::{self as rfs, Dir, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Which xattrs a copy carries over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XattrRule {
    #[default]
    All,
    /// Only `security.capability` (what dockerd's tar of a tree keeps).
    Capability,
    None,
}

/// How a copy treats metadata. The default is an exact copy (the vfs
/// driver's layers, volume copy-up); a Dockerfile COPY wants what dockerd's
/// CopyWithTar and chown leave instead (see `build/copy.py`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy {
    /// Every entry gets this owner (else it keeps the source's).
    pub owner: Option<(u32, u32)>,
    /// Every entry gets these permission bits (COPY --chmod).
    pub chmod: Option<u32>,
    pub xattrs: XattrRule,
    /// Times in whole seconds with atime = mtime, as a tar round trip leaves them.
    pub tar_times: bool,
    /// The destination may hold entries already: a directory stays and is
    /// merged into, anything else in the way is removed first.
    pub merge: bool,
    /// Sockets are passed over (a tar can't carry one).
    pub skip_sockets: bool,
    /// The destination root's own owner, mode and times are left alone.
    pub keep_root_meta: bool,
}

impl Policy {
    fn owner(&self, m: &libc::stat) -> (libc::uid_t, libc::gid_t) {
        self.owner.unwrap_or((m.st_uid, m.st_gid))
    }

    /// Permission bits. A chown to a given owner makes the kernel drop
    /// setuid (and setgid with group exec) from anything but a directory.
    fn mode(&self, m: &libc::stat) -> libc::mode_t {
        if let Some(c) = self.chmod {
            return c & 0o7777;
        }
        let mut mode = m.st_mode & 0o7777;
        if self.owner.is_some() && m.st_mode & libc::S_IFMT != libc::S_IFDIR {
            mode &= !libc::S_ISUID;
            if mode & libc::S_IXGRP != 0 {
                mode &= !libc::S_ISGID;
            }
        }
        mode
    }

    fn times(&self, m: &libc::stat) -> [libc::timespec; 2] {
        if self.tar_times {
            let t = libc::timespec { tv_sec: m.st_mtime as _, tv_nsec: 0 };
            return [t, t];
        }
        timespecs(m)
    }
}

/// Copy the contents of the directory open at `src` into the one open at
/// `dst` (either fd may be `O_PATH`; both stay the caller's) under `policy`
/// (see [`copy_dir_fd`]); returns how many entries it made. The names only
/// name the trees in errors.
pub fn copy_into(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, src_name: &Path, dst_name: &Path, policy: Policy) -> Result<usize> {
    let s = openat(src, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0).ctx("open", src_name)?;
    let d = openat(dst, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0).ctx("open", dst_name)?;
    copy_dir_with(s, d, src_name, dst_name, policy)
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
///
/// Directories are copied by a few threads at once (two per CPU, at most
/// [`MAX_WORKERS`]): creating inodes is most of the cost, and the filesystem
/// takes them in parallel across directories. Each directory's entries are
/// made by one thread, which then sets the directory's metadata, so its
/// mtime stays the source's. A further link to a multiply-linked file is
/// made after all threads are done (its first copy may still be in the
/// making), and so is the metadata of a directory that gets such a link.
pub(crate) fn copy_dir_fd(src: OwnedFd, dst: OwnedFd, src_name: &Path, dst_name: &Path) -> Result<()> {
    copy_dir_with(src, dst, src_name, dst_name, Policy::default()).map(drop)
}

/// [`copy_dir_fd`] under `policy`; how many entries it made.
fn copy_dir_with(src: OwnedFd, dst: OwnedFd, src_name: &Path, dst_name: &Path, policy: Policy) -> Result<usize> {
    let st = fstat(src.as_fd()).ctx("stat", src_name)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::io("copy", src_name, io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    let dst_st = fstat(dst.as_fd()).ctx("stat", dst_name)?;
    let sh = Shared {
        src_name: src_name.to_path_buf(),
        dst_name: dst_name.to_path_buf(),
        dst_root: dst.try_clone().ctx("dup", dst_name)?,
        owner: unsafe { (libc::geteuid(), libc::getegid()) },
        umask: umask(),
        policy,
        made: AtomicUsize::new(0),
        no_reflink: AtomicBool::new(false),
        links: Mutex::new(HashMap::new()),
        work: Mutex::new(Work::default()),
        more: Condvar::new(),
    };
    let root = Job { src, dst, rel: PathBuf::new(), st, sgid: dst_st.st_mode & libc::S_ISGID != 0, fresh: !policy.merge };
    sh.work.lock().unwrap().queue.push(root);
    // Twice the CPUs: much of a thread's time is spent waiting for the
    // filesystem's journal, not computing.
    let n = std::thread::available_parallelism().map_or(1, |n| n.get() * 2).clamp(2, MAX_WORKERS);
    std::thread::scope(|s| {
        for _ in 1..n {
            s.spawn(|| sh.worker());
        }
        sh.worker();
    });
    let work = std::mem::take(&mut *sh.work.lock().unwrap());
    if let Some(e) = work.err {
        return Err(e);
    }
    let w = Worker::new(&sh);
    for l in &work.links {
        w.link(l)?;
    }
    let mut dirs = work.dirs;
    dirs.sort_by_key(|j| std::cmp::Reverse(j.rel.components().count()));
    for j in dirs {
        if j.rel.as_os_str().is_empty() && policy.keep_root_meta {
            continue;
        }
        let (sp, dp) = (src_name.join(&j.rel), dst_name.join(&j.rel));
        set_meta(j.src.as_fd(), j.dst.as_fd(), &j.st, Done::default(), &policy, &sp, &dp)?;
    }
    Ok(sh.made.load(Ordering::Relaxed))
}

/// Up to this size, data goes through a buffer: copy_file_range without a
/// reflink splices through a pipe, which costs more than it saves on small files.
const SMALL: i64 = 64 << 10;
/// The umask, read without changing it (umask(2) can't, and other threads
/// may create files meanwhile).
fn umask() -> libc::mode_t {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let v = status.lines().find_map(|l| l.strip_prefix("Umask:"));
    v.and_then(|v| libc::mode_t::from_str_radix(v.trim(), 8).ok()).unwrap_or(0o777)
}

/// Threads per copy: more than the disk's queue can use only adds contention.
const MAX_WORKERS: usize = 4;
/// Directories waiting for a thread; beyond this a thread copies a
/// subdirectory itself (depth first), so a wide tree can't exhaust fds.
const MAX_QUEUED: usize = 64;

/// A directory to fill: both fds open, `rel` its path below both roots.
struct Job {
    src: OwnedFd,
    dst: OwnedFd,
    rel: PathBuf,
    st: libc::stat,
    /// `dst` is setgid: what is created in it takes its group.
    sgid: bool,
    /// `dst` was made by this copy: nothing in it can be in the way.
    fresh: bool,
}

/// A further link to a multiply-linked file, made after the copy.
struct Later {
    /// Where the first copy is, below the destination root.
    first_dir: PathBuf,
    first: CString,
    /// Where the new link goes.
    dir: PathBuf,
    name: CString,
}

#[derive(Default)]
struct Work {
    queue: Vec<Job>,
    /// Threads working on a job: when none is and the queue is empty, all is done.
    busy: usize,
    err: Option<Error>,
    links: Vec<Later>,
    /// Directories whose metadata waits for their `links`.
    dirs: Vec<Job>,
}

struct Shared {
    /// The trees' names, for errors only.
    src_name: PathBuf,
    dst_name: PathBuf,
    /// The destination root, to reach a hardlink's first copy.
    dst_root: OwnedFd,
    /// Who owns what this process creates (where no setgid dir intervenes).
    owner: (libc::uid_t, libc::gid_t),
    /// The process's umask (all bits if unknown).
    umask: libc::mode_t,
    policy: Policy,
    /// Entries made so far (every name: a further link counts).
    made: AtomicUsize,
    /// FICLONE failed once with "not supported": don't try again.
    no_reflink: AtomicBool,
    /// (dev, ino) of a multiply-linked source file → its first copy: the
    /// directory (relative to the destination root) and the name in it.
    links: Mutex<HashMap<(u64, u64), (PathBuf, CString)>>,
    work: Mutex<Work>,
    more: Condvar,
}

impl Shared {
    fn worker(&self) {
        let mut w = Worker::new(self);
        loop {
            let job = {
                let mut work = self.work.lock().unwrap();
                loop {
                    if work.err.is_some() {
                        return;
                    }
                    if let Some(j) = work.queue.pop() {
                        work.busy += 1;
                        break j;
                    }
                    if work.busy == 0 {
                        return;
                    }
                    work = self.more.wait(work).unwrap();
                }
            };
            let r = w.dir(job);
            let mut work = self.work.lock().unwrap();
            work.busy -= 1;
            if let Err(e) = r {
                work.err.get_or_insert(e);
            }
            if work.busy == 0 || work.err.is_some() {
                self.more.notify_all();
            }
        }
    }

    /// Hand `job` to another thread, or give it back when enough wait.
    fn offer(&self, job: Job) -> Option<Job> {
        let mut work = self.work.lock().unwrap();
        if work.queue.len() >= MAX_QUEUED {
            return Some(job);
        }
        work.queue.push(job);
        self.more.notify_one();
        None
    }
}

/// One thread's state.
struct Worker<'a> {
    sh: &'a Shared,
    buf: Vec<u8>,
    /// The directory being copied, relative to both roots.
    rel: PathBuf,
    /// It got a link deferred to the end (and so must its metadata).
    deferred: bool,
    /// It was made by this copy (see [`Job::fresh`]).
    fresh: bool,
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

/// What to do with a source file that has other links.
enum Linked {
    /// The first one seen: copy it.
    First,
    /// Link it to the first copy, later.
    Deferred,
}

impl<'a> Worker<'a> {
    fn new(sh: &'a Shared) -> Self {
        Worker { sh, buf: Vec::new(), rel: PathBuf::new(), deferred: false, fresh: true }
    }

    fn src_path(&self, name: &CStr) -> PathBuf {
        self.sh.src_name.join(&self.rel).join(OsStr::from_bytes(name.to_bytes()))
    }

    fn dst_path(&self, name: &CStr) -> PathBuf {
        self.sh.dst_name.join(&self.rel).join(OsStr::from_bytes(name.to_bytes()))
    }

    /// Fill one directory (subdirectories go to other threads when they can),
    /// then set its metadata, or leave that for the end if it gets a link then.
    fn dir(&mut self, job: Job) -> Result<()> {
        let Job { src, dst, rel, st, sgid, fresh } = job;
        let (outer_rel, outer_deferred) = (std::mem::replace(&mut self.rel, rel), std::mem::take(&mut self.deferred));
        let outer_fresh = std::mem::replace(&mut self.fresh, fresh);
        let r = self.fill(src, dst, st, sgid);
        self.rel = outer_rel;
        self.deferred = outer_deferred;
        self.fresh = outer_fresh;
        r
    }

    fn fill(&mut self, src: OwnedFd, dst: OwnedFd, st: libc::stat, sgid: bool) -> Result<()> {
        let mut rd = Dir::new(src).map_err(io::Error::from).ctx("readdir", &self.sh.src_name.join(&self.rel))?;
        while let Some(ent) = rd.read() {
            let ent = ent.map_err(io::Error::from).ctx("readdir", &self.sh.src_name.join(&self.rel))?;
            let name = ent.file_name();
            if is_dot(name) {
                continue;
            }
            let sdir = rd.fd().expect("Dir::fd");
            if ent.file_type() == rfs::FileType::RegularFile && self.file_fast(sdir, dst.as_fd(), name, sgid)? {
                self.sh.made.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.entry(sdir, dst.as_fd(), name, sgid)?;
        }
        // Last, so read-only dirs can be filled and mtimes stay.
        let sdir = rd.fd().expect("Dir::fd");
        if self.deferred {
            let src = sdir.try_clone_to_owned().ctx("dup", &self.sh.src_name.join(&self.rel))?;
            let job = Job { src, dst, rel: self.rel.clone(), st, sgid, fresh: self.fresh };
            self.sh.work.lock().unwrap().dirs.push(job);
            return Ok(());
        }
        if self.rel.as_os_str().is_empty() && self.sh.policy.keep_root_meta {
            return Ok(());
        }
        let (sp, dp) = (self.sh.src_name.join(&self.rel), self.sh.dst_name.join(&self.rel));
        set_meta(sdir, dst.as_fd(), &st, Done::default(), &self.sh.policy, &sp, &dp)
    }

    /// Make room for `name` in a directory that may hold entries (a merge):
    /// a directory stays for a directory (true: it is there), anything else
    /// in the way is removed.
    fn make_room(&self, ddir: BorrowedFd<'_>, name: &CStr, want_dir: bool) -> Result<bool> {
        if self.fresh {
            return Ok(false);
        }
        match fstatat(ddir, name, NOFOLLOW) {
            Ok(d) if want_dir && d.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(true),
            Ok(_) => remove_at(ddir, name, &self.dst_path(name)).map(|_| false),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::io("stat", &self.dst_path(name), e)),
        }
    }

    /// Whether a multiply-linked file is copied now or linked at the end.
    fn linked(&mut self, st: &libc::stat, name: &CStr) -> Linked {
        let key = (st.st_dev as u64, st.st_ino as u64);
        let mut links = self.sh.links.lock().unwrap();
        match links.get(&key) {
            None => {
                links.insert(key, (self.rel.clone(), name.to_owned()));
                Linked::First
            }
            Some((first_dir, first)) => {
                let later =
                    Later { first_dir: first_dir.clone(), first: first.clone(), dir: self.rel.clone(), name: name.to_owned() };
                drop(links);
                self.sh.work.lock().unwrap().links.push(later);
                self.deferred = true;
                Linked::Deferred
            }
        }
    }

    fn entry(&mut self, sdir: BorrowedFd<'_>, ddir: BorrowedFd<'_>, name: &CStr, sgid: bool) -> Result<()> {
        let st = fstatat(sdir, name, NOFOLLOW).ctx("stat", &self.src_path(name))?;
        let ft = st.st_mode & libc::S_IFMT;
        if ft == libc::S_IFSOCK && self.sh.policy.skip_sockets {
            return Ok(());
        }
        self.sh.made.fetch_add(1, Ordering::Relaxed);
        if ft != libc::S_IFDIR && st.st_nlink > 1 {
            if let Linked::Deferred = self.linked(&st, name) {
                return Ok(());
            }
        }
        match ft {
            libc::S_IFDIR => {
                let s = openat(sdir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
                    .ctx("open", &self.src_path(name))?;
                let sst = fstat(s.as_fd()).ctx("stat", &self.src_path(name))?;
                let there = self.make_room(ddir, name, true)?;
                if !there {
                    cvt(unsafe { libc::mkdirat(ddir.as_raw_fd(), name.as_ptr(), 0o700) }).ctx("mkdir", &self.dst_path(name))?;
                }
                let d = openat(ddir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
                    .ctx("open", &self.dst_path(name))?;
                // A new directory in a setgid one is setgid too (an old one: as it is).
                let sgid = if there { fstat(d.as_fd()).ctx("stat", &self.dst_path(name))?.st_mode & libc::S_ISGID != 0 } else { sgid };
                let rel = self.rel.join(OsStr::from_bytes(name.to_bytes()));
                let job = Job { src: s, dst: d, rel, st: sst, sgid, fresh: !there };
                match self.sh.offer(job) {
                    None => Ok(()),
                    Some(job) => self.dir(job),
                }
            }
            libc::S_IFREG => self.file(sdir, ddir, name, &st, sgid),
            libc::S_IFLNK => self.symlink(sdir, ddir, name, &st),
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO | libc::S_IFSOCK => self.special(sdir, ddir, name, &st),
            _ => Err(Error::io(
                "copy",
                &self.src_path(name),
                io::Error::new(io::ErrorKind::Unsupported, "unknown file type"),
            )),
        }
    }

    /// A further link to a file already copied, made once all threads are
    /// done: the first copy is reached beneath the destination root without
    /// following symlinks.
    fn link(&self, l: &Later) -> Result<()> {
        let dp = self.sh.dst_name.join(&l.dir).join(OsStr::from_bytes(l.name.to_bytes()));
        let beneath = |rel: &Path| -> Result<Option<OwnedFd>> {
            if rel.as_os_str().is_empty() {
                return Ok(None);
            }
            openat2(
                self.sh.dst_root.as_fd(),
                rel.as_os_str().as_bytes(),
                OFlags::PATH | OFlags::DIRECTORY,
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            )
            .ctx("link", &dp)
            .map(Some)
        };
        let (from, to) = (beneath(&l.first_dir)?, beneath(&l.dir)?);
        let root = self.sh.dst_root.as_raw_fd();
        let (from, to) = (from.as_ref().map_or(root, |f| f.as_raw_fd()), to.as_ref().map_or(root, |f| f.as_raw_fd()));
        let link = || cvt(unsafe { libc::linkat(from, l.first.as_ptr(), to, l.name.as_ptr(), 0) });
        match link() {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && self.sh.policy.merge => {
                remove_at(unsafe { BorrowedFd::borrow_raw(to) }, &l.name, &dp)?;
                link().ctx("link", &dp).map(drop)
            }
            r => r.ctx("link", &dp).map(drop),
        }
    }

    /// A regular file as readdir says: opened and checked with one fstat
    /// (no fstatat first). Ok(false) if it turns out not to be one (the
    /// caller then takes the general path).
    fn file_fast(&mut self, sdir: BorrowedFd<'_>, ddir: BorrowedFd<'_>, name: &CStr, sgid: bool) -> Result<bool> {
        let src = match self.open_src(sdir, name) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(false), // swapped for a symlink
            Err(e) => return Err(Error::io("open", &self.src_path(name), e)),
        };
        let m = fstat(src.as_fd()).ctx("stat", &self.src_path(name))?;
        if m.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(false);
        }
        if m.st_nlink > 1 {
            if let Linked::Deferred = self.linked(&m, name) {
                return Ok(true);
            }
        }
        self.file_data(src, ddir, name, &m, sgid)?;
        Ok(true)
    }

    fn open_src(&self, sdir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
        // O_NONBLOCK: should a fifo be swapped in, opening it doesn't hang
        // (and it is refused by the caller).
        let fl = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        openat(sdir, name, fl | libc::O_NOATIME, 0).or_else(|_| openat(sdir, name, fl, 0))
    }

    fn file(&mut self, sdir: BorrowedFd<'_>, ddir: BorrowedFd<'_>, name: &CStr, st: &libc::stat, sgid: bool) -> Result<()> {
        let src = self.open_src(sdir, name).ctx("open", &self.src_path(name))?;
        let m = fstat(src.as_fd()).ctx("stat", &self.src_path(name))?;
        if !same(&m, st) {
            return Err(Error::io("open", &self.src_path(name), changed()));
        }
        self.file_data(src, ddir, name, &m, sgid)
    }

    fn file_data(&mut self, src: OwnedFd, ddir: BorrowedFd<'_>, name: &CStr, m: &libc::stat, sgid: bool) -> Result<()> {
        let p = &self.sh.policy;
        let owned = !sgid && p.owner(m) == self.sh.owner;
        // Created with its mode when the umask leaves it whole (and no chown
        // will clear setuid bits): one fchmod less.
        let mode = p.mode(m);
        let moded = owned && mode & 0o7000 == 0 && mode & self.sh.umask == 0;
        self.make_room(ddir, name, false)?;
        let dst = openat(ddir, name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, if moded { mode } else { 0o600 })
            .ctx("create", &self.dst_path(name))?;
        let size = m.st_size as u64;
        if size > 0 && !self.reflink(&src, &dst) {
            // Enough blocks for every byte: no hole to look for.
            let dense = m.st_blocks as u64 * 512 >= size;
            let end = if dense { self.range(src.as_raw_fd(), dst.as_raw_fd(), 0, size as i64).map(|e| e as u64) } else {
                self.data(src.as_raw_fd(), dst.as_raw_fd(), size)
            }
            .ctx("copy", &self.dst_path(name))?;
            if end < size {
                // A trailing hole (or the file shrank): the size still is `size`.
                cvt(unsafe { libc::ftruncate(dst.as_raw_fd(), size as libc::off_t) })
                    .ctx("truncate", &self.dst_path(name))?;
            }
        }
        let done = Done { owner: owned, mode: moded };
        set_meta(src.as_fd(), dst.as_fd(), m, done, &self.sh.policy, &self.src_path(name), &self.dst_path(name))
    }

    fn reflink(&self, src: &OwnedFd, dst: &OwnedFd) -> bool {
        if self.sh.no_reflink.load(Ordering::Relaxed) {
            return false;
        }
        let r = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
        if r == 0 {
            return true;
        }
        match errno().raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) | Some(libc::ENOSYS) => self.sh.no_reflink.store(true, Ordering::Relaxed),
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
        let p = self.sh.policy;
        self.make_room(ddir, name, false)?;
        cvt(unsafe { libc::symlinkat(target.as_ptr(), ddir.as_raw_fd(), name.as_ptr()) }).ctx("symlink", &dp)?;
        let (uid, gid) = p.owner(&m);
        cvt(unsafe { libc::fchownat(ddir.as_raw_fd(), name.as_ptr(), uid, gid, NOFOLLOW) }).ctx("chown", &dp)?;
        // A symlink's xattrs go only with an exact copy (a tar keeps none).
        if p.xattrs == XattrRule::All {
            let sx = Xattrs::Path(proc_fd(src.as_fd()));
            let names = list_xattrs(&sx).ctx("listxattr", &sp)?;
            if !names.is_empty() {
                let dst = openat(ddir, name, libc::O_PATH | libc::O_NOFOLLOW, 0).ctx("open", &dp)?;
                copy_xattrs(&sx, &Xattrs::Path(proc_fd(dst.as_fd())), &names, &sp, &dp)?;
            }
        }
        set_times_at(ddir, name, &p.times(&m)).ctx("utimes", &dp)
    }

    /// Devices, fifos, sockets: made with mknod, never opened for I/O.
    fn special(&mut self, sdir: BorrowedFd<'_>, ddir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> Result<()> {
        let (sp, dp) = (self.src_path(name), self.dst_path(name));
        let src = openat(sdir, name, libc::O_PATH | libc::O_NOFOLLOW, 0).ctx("open", &sp)?;
        let m = fstat(src.as_fd()).ctx("stat", &sp)?;
        if !same(&m, st) {
            return Err(Error::io("open", &sp, changed()));
        }
        let p = self.sh.policy;
        self.make_room(ddir, name, false)?;
        cvt(unsafe { libc::mknodat(ddir.as_raw_fd(), name.as_ptr(), m.st_mode, m.st_rdev) }).ctx("mknod", &dp)?;
        let dst = openat(ddir, name, libc::O_PATH | libc::O_NOFOLLOW, 0).ctx("open", &dp)?;
        let dpath = proc_fd(dst.as_fd());
        // Owner, then xattrs (chown drops security.capability), then mode, then times.
        let (uid, gid) = p.owner(&m);
        cvt(unsafe { libc::fchownat(dst.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) })
            .ctx("chown", &dp)?;
        if p.xattrs == XattrRule::All {
            let sx = Xattrs::Path(proc_fd(src.as_fd()));
            let names = list_xattrs(&sx).ctx("listxattr", &sp)?;
            copy_xattrs(&sx, &Xattrs::Path(dpath.clone()), &names, &sp, &dp)?;
        }
        cvt(unsafe { libc::chmod(dpath.as_ptr(), p.mode(&m)) }).ctx("chmod", &dp)?;
        set_times_at(ddir, name, &p.times(&m)).ctx("utimes", &dp)
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
        if end - start <= SMALL {
            return self.rw(sfd, dfd, start, end);
        }
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

fn set_times_at(dir: BorrowedFd<'_>, name: &CStr, ts: &[libc::timespec; 2]) -> io::Result<()> {
    cvt(unsafe { libc::utimensat(dir.as_raw_fd(), name.as_ptr(), ts.as_ptr(), NOFOLLOW) }).map(drop)
}

/// What creating `dst` already set right.
#[derive(Default, Clone, Copy)]
struct Done {
    owner: bool,
    mode: bool,
}

/// For a regular file or directory open for I/O, under the policy: owner,
/// then xattrs (chown drops security.capability), then mode (chown drops
/// setuid/setgid), then times; less what `done` says is right already.
fn set_meta(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, m: &libc::stat, done: Done, p: &Policy, sp: &Path, dp: &Path) -> Result<()> {
    if !done.owner {
        let (uid, gid) = p.owner(m);
        cvt(unsafe { libc::fchown(dst.as_raw_fd(), uid, gid) }).ctx("chown", dp)?;
    }
    let sx = Xattrs::Fd(src);
    match p.xattrs {
        XattrRule::All => {
            let names = list_xattrs(&sx).ctx("listxattr", sp)?;
            copy_xattrs(&sx, &Xattrs::Fd(dst), &names, sp, dp)?;
        }
        // As dockerd's untar: a filesystem that can't keep it is no error.
        XattrRule::Capability => drop(copy_xattrs(&sx, &Xattrs::Fd(dst), b"security.capability\0", sp, dp)),
        XattrRule::None => {}
    }
    if !done.mode {
        cvt(unsafe { libc::fchmod(dst.as_raw_fd(), p.mode(m)) }).ctx("chmod", dp)?;
    }
    let ts = p.times(m);
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

/// Remove `name` from `dir`, a directory with all it holds (never
/// following symlinks); gone already is no error.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &CStr, path: &Path) -> Result<()> {
    match cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }) {
        Ok(_) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {}
        Err(e) => return Err(Error::io("unlink", path, e)),
    }
    let sub = openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0).ctx("open", path)?;
    empty_dir(sub.as_fd(), path)?;
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) }).ctx("rmdir", path).map(drop)
}

/// Remove everything in the directory `dir` (never following symlinks).
pub(crate) fn empty_dir(dir: BorrowedFd<'_>, name: &Path) -> Result<()> {
    for ent in read_names(dir).ctx("readdir", name)? {
        remove_at(dir, &ent, &name.join(OsStr::from_bytes(ent.to_bytes())))?;
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

    /// A Dockerfile COPY's policy: merged into what is there, owner given,
    /// setuid dropped from files, whole-second times, sockets passed over,
    /// only security.capability kept, the destination's own metadata alone.
    #[test]
    fn copies_into_as_a_dockerfile_copy() {
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        fs::create_dir_all(src.join("keep/sub")).unwrap();
        fs::write(src.join("keep/new"), "new").unwrap();
        fs::write(src.join("was_dir"), "file now").unwrap();
        fs::create_dir(src.join("was_file")).unwrap();
        fs::write(src.join("was_file/x"), "x").unwrap();
        fs::write(src.join("suid"), "s").unwrap();
        fs::set_permissions(src.join("suid"), fs::Permissions::from_mode(0o6755)).unwrap();
        fs::set_permissions(src.join("keep"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(src.join("a"), "a").unwrap();
        fs::hard_link(src.join("a"), src.join("keep/a2")).unwrap();
        let sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
        fs::create_dir_all(dst.join("keep")).unwrap();
        fs::write(dst.join("keep/old"), "old").unwrap();
        fs::create_dir_all(dst.join("was_dir/deep")).unwrap();
        fs::write(dst.join("was_file"), "f").unwrap();
        fs::write(dst.join("keep/a2"), "in the way").unwrap();
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o711)).unwrap();
        let dst_before = fs::metadata(&dst).unwrap();

        let open = |p: &Path| File::open(p).unwrap();
        let (s, d) = (open(&src), open(&dst));
        let policy = Policy {
            owner: Some((unsafe { libc::geteuid() }, unsafe { libc::getegid() })),
            xattrs: XattrRule::Capability,
            tar_times: true,
            merge: true,
            skip_sockets: true,
            keep_root_meta: true,
            ..Policy::default()
        };
        let made = copy_into(s.as_fd(), d.as_fd(), &src, &dst, policy).unwrap();
        drop(sock);

        let m = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
        assert_eq!(fs::read_to_string(dst.join("keep/old")).unwrap(), "old");
        assert_eq!(fs::read_to_string(dst.join("keep/new")).unwrap(), "new");
        assert_eq!(fs::read_to_string(dst.join("was_dir")).unwrap(), "file now");
        assert_eq!(fs::read_to_string(dst.join("was_file/x")).unwrap(), "x");
        assert_eq!(m("a").ino(), m("keep/a2").ino());
        assert!(!dst.join("sock").exists());
        assert_eq!(m("suid").mode() & 0o7777, 0o0755);
        assert_eq!(m("keep").mode() & 0o7777, 0o750);
        assert_eq!(m("keep/new").mtime_nsec(), 0);
        assert_eq!(m("keep/new").atime(), m("keep/new").mtime());
        let after = fs::metadata(&dst).unwrap();
        assert_eq!(after.mode(), dst_before.mode());
        // keep, sub, new, a2, was_dir, was_file, x, suid, a (the socket: none)
        assert_eq!(made, 9);
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
    fn copies_wide_trees_in_parallel_with_links_across_dirs() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        for d in 0..150 {
            let dir = src.join(format!("d{d}/sub"));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..5 {
                fs::write(dir.join(format!("f{f}")), format!("{d}/{f}")).unwrap();
            }
            if d > 0 {
                // links to one file from every directory, made in any order
                fs::hard_link(src.join("d0/sub/f0"), src.join(format!("d{d}/link"))).unwrap();
            }
        }
        let modes = [0o666, 0o644, 0o640, 0o444, 0o2755, 0o1777, 0o600, 0o755];
        for (i, m) in modes.iter().enumerate() {
            fs::write(src.join(format!("d1/m{i}")), "m").unwrap();
            fs::set_permissions(src.join(format!("d1/m{i}")), fs::Permissions::from_mode(*m)).unwrap();
        }
        // mtimes of the directories set last: they must survive the copy
        let old = libc::timespec { tv_sec: 1_000_000, tv_nsec: 0 };
        for d in 0..150 {
            let c = cstr(&src.join(format!("d{d}"))).unwrap();
            unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [old, old].as_ptr(), 0) };
        }
        let dst = t.path().join("dst");
        copy_tree(&src, &dst).unwrap();
        for (i, m) in modes.iter().enumerate() {
            assert_eq!(fs::metadata(dst.join(format!("d1/m{i}"))).unwrap().mode() & 0o7777, *m, "m{i}");
        }
        let ino = fs::metadata(dst.join("d0/sub/f0")).unwrap().ino();
        for d in 0..150 {
            assert_eq!(fs::read_to_string(dst.join(format!("d{d}/sub/f4"))).unwrap(), format!("{d}/4"));
            assert_eq!(fs::metadata(dst.join(format!("d{d}"))).unwrap().mtime(), 1_000_000, "d{d}");
            if d > 0 {
                assert_eq!(fs::metadata(dst.join(format!("d{d}/link"))).unwrap().ino(), ino);
            }
        }
        assert_eq!(fs::metadata(dst.join("d0/sub/f0")).unwrap().nlink(), 150);
    }

    #[test]
    fn refuses_non_dirs() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        assert!(copy_tree(&t.path().join("f"), &t.path().join("g")).is_err());
        assert!(copy_tree(t.path(), &t.path().join("f")).is_err());
    }
}
