//! Mounts inside the new mount namespace: option parsing, targets resolved
//! beneath the rootfs (openat2 RESOLVE_IN_ROOT, never string joins), /dev,
//! pivot_root, masked and read-only paths.

use crate::error::{Error, Result};
use crate::spec::Mount;
use crate::sys::{self, cstr, fd_path};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub flags: libc::c_ulong,
    pub propagation: libc::c_ulong,
    pub data: String,
}

/// OCI/fstab mount options -> (flags, propagation flags, data).
pub fn parse_options(opts: &[String]) -> Parsed {
    let mut p = Parsed::default();
    let mut data = Vec::new();
    for o in opts {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "defaults" => (0, 0),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                let rec = if o.starts_with('r') { libc::MS_REC } else { 0 };
                let kind = match &o[if rec != 0 { 1 } else { 0 }..] {
                    "private" => libc::MS_PRIVATE,
                    "shared" => libc::MS_SHARED,
                    "slave" => libc::MS_SLAVE,
                    _ => libc::MS_UNBINDABLE,
                };
                p.propagation = kind | rec;
                continue;
            }
            _ => {
                data.push(o.clone());
                continue;
            }
        };
        p.flags = (p.flags & !clear) | set;
    }
    p.data = data.join(",");
    p
}

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Dir,
    File,
}

/// Resolve `path` beneath `root` (as if chrooted), creating missing
/// components (directories; the last one a file for `Kind::File`). Returns an
/// O_PATH fd of the result.
pub fn mkdir_all_in_root(root: RawFd, path: &str, kind: Kind) -> Result<OwnedFd> {
    mkdir_all_at_depth(root, path, kind, 0)
}

/// As many symlinks as the kernel follows in one lookup (MAXSYMLINKS).
const MAX_LINKS: u32 = 40;

fn mkdir_all_at_depth(root: RawFd, path: &str, kind: Kind, links: u32) -> Result<OwnedFd> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if comps.is_empty() {
        return sys::openat_in_root(root, "/", libc::O_PATH).map_err(|e| Error::errno("open /", e));
    }
    let full = comps.join("/");
    match sys::openat_in_root(root, &full, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(libc::ENOENT) => {}
        Err(e) => return Err(Error::errno(format!("open {path}"), e)),
    }
    let mut parent = sys::openat_in_root(root, "/", libc::O_PATH).map_err(|e| Error::errno("open /", e))?;
    for (i, c) in comps.iter().enumerate() {
        let prefix = comps[..=i].join("/");
        match sys::openat_in_root(root, &prefix, libc::O_PATH) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(libc::ENOENT) => {}
            Err(e) => return Err(Error::errno(format!("open {prefix}"), e)),
        }
        let name = cstr(c)?;
        let last = i == comps.len() - 1;
        // The parent came from a RESOLVE_IN_ROOT lookup; `name` is a single component.
        let r = if last && kind == Kind::File {
            let fd = unsafe {
                libc::openat(parent.as_raw_fd(), name.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC, 0o644)
            };
            if fd >= 0 {
                unsafe { libc::close(fd) };
                0
            } else {
                -1
            }
        } else {
            unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) }
        };
        if r < 0 && sys::errno() != libc::EEXIST {
            return Err(Error::errno(format!("mkdir {prefix}"), sys::errno()));
        }
        if r < 0 {
            // EEXIST yet not found: a symlink to a missing path. As dockerd
            // (securejoin + MkdirAll), make its target, inside the root.
            if let Some(target) = readlink_at(parent.as_raw_fd(), &name) {
                if links >= MAX_LINKS {
                    return Err(Error::errno(format!("open {path}"), libc::ELOOP));
                }
                let base = if target.starts_with('/') { String::new() } else { comps[..i].join("/") };
                let rest = comps[i + 1..].join("/");
                let next = format!("{base}/{target}/{rest}");
                return mkdir_all_at_depth(root, &next, kind, links + 1);
            }
        }
        parent = sys::openat_in_root(root, &prefix, libc::O_PATH).map_err(|e| Error::errno(format!("open {prefix}"), e))?;
    }
    Ok(parent)
}

/// The target of the symlink `name` in directory `dir`, if it is one.
fn readlink_at(dir: RawFd, name: &std::ffi::CStr) -> Option<String> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is PATH_MAX bytes; readlinkat writes at most that many.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    String::from_utf8(buf).ok()
}

fn is_dir_path(p: &str) -> bool {
    std::fs::metadata(p).map(|m| m.is_dir()).unwrap_or(true)
}

/// Mount one spec entry beneath the rootfs (before pivot_root).
pub fn mount_one(root: RawFd, m: &Mount, layout: Option<&crate::cgroup::Layout>) -> Result<()> {
    let p = parse_options(&m.options);
    let err = |e: i32| Error::errno(format!("mount {} on {} ({})", if m.source.is_empty() { &m.kind } else { &m.source }, m.destination, m.kind), e);
    if m.kind == "bind" || p.flags & libc::MS_BIND != 0 {
        let kind = if is_dir_path(&m.source) { Kind::Dir } else { Kind::File };
        let target = mkdir_all_in_root(root, &m.destination, kind)?;
        let tp = fd_path(&target);
        let src = cstr(&m.source)?;
        let rec = if p.flags & libc::MS_REC != 0 || m.kind == "rbind" { libc::MS_REC } else { 0 };
        sys::mount(Some(&src), &tp, None, libc::MS_BIND | rec, None).map_err(err)?;
        let extra = p.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            // Re-open: the fd above points at the covered directory, not the new mount.
            let t2 = mkdir_all_in_root(root, &m.destination, kind)?;
            let tp2 = fd_path(&t2);
            // Keep flags the kernel locks from the source mount.
            let locked = statvfs_flags(&tp2);
            sys::mount(None, &tp2, None, libc::MS_BIND | libc::MS_REMOUNT | extra | locked, None).map_err(err)?;
        }
        if p.propagation != 0 {
            let t3 = mkdir_all_in_root(root, &m.destination, kind)?;
            sys::mount(None, &fd_path(&t3), None, p.propagation, None).map_err(err)?;
        }
        return Ok(());
    }
    if m.kind == "cgroup" {
        return mount_cgroup(root, m, &p, layout).map_err(|e| match e {
            Error::Os { errno, .. } => err(errno),
            e => e,
        });
    }
    let target = mkdir_all_in_root(root, &m.destination, Kind::Dir)?;
    let tp = fd_path(&target);
    let src = cstr(if m.source.is_empty() { &m.kind } else { &m.source })?;
    let fst = cstr(&m.kind)?;
    let data = if p.data.is_empty() { None } else { Some(cstr(&p.data)?) };
    match sys::mount(Some(&src), &tp, Some(&fst), p.flags & !libc::MS_REMOUNT, data.as_deref()) {
        // A user-namespaced container in a network namespace it doesn't own
        // may not mount sysfs: bind the host's, as runc does.
        Err(libc::EPERM) if m.kind == "sysfs" => {
            sys::mount(Some(c"/sys"), &tp, None, libc::MS_BIND | libc::MS_REC, None).map_err(err)?;
            let extra = p.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
            if extra != 0 {
                let t2 = mkdir_all_in_root(root, &m.destination, Kind::Dir)?;
                let tp2 = fd_path(&t2);
                let locked = statvfs_flags(&tp2);
                sys::mount(None, &tp2, None, libc::MS_BIND | libc::MS_REMOUNT | extra | locked, None).map_err(err)?;
            }
        }
        r => r.map_err(err)?,
    }
    if p.propagation != 0 {
        let t2 = mkdir_all_in_root(root, &m.destination, Kind::Dir)?;
        sys::mount(None, &fd_path(&t2), None, p.propagation, None).map_err(err)?;
    }
    if m.kind == "tmpfs" && m.destination.trim_end_matches('/') == "/dev" {
        let t2 = mkdir_all_in_root(root, "/dev", Kind::Dir)?;
        let dev = sys::openat(t2.as_raw_fd(), c".", libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
        populate_dev(dev.as_raw_fd())?;
    }
    Ok(())
}

/// A sysfs of the caller's network namespace, mounted nowhere yet (the new
/// mount API: fsopen, fsmount), with the spec entry's flags. A
/// user-namespaced container that joins a network namespace it doesn't own
/// may not mount sysfs itself; its parent, still the host's root and already
/// standing in that namespace, makes it, and the child attaches it
/// ([`attach_detached`]) instead of falling back to the host's /sys.
pub fn detached_sysfs(m: &Mount) -> Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let p = parse_options(&m.options);
    let mut attrs: libc::c_uint = 0;
    for (ms, attr) in [(libc::MS_RDONLY, 0x1), (libc::MS_NOSUID, 0x2), (libc::MS_NODEV, 0x4), (libc::MS_NOEXEC, 0x8)] {
        if p.flags & ms != 0 {
            attrs |= attr;
        }
    }
    // SAFETY: plain syscalls on fds we own; strings are valid C strings.
    unsafe {
        let fs = libc::syscall(libc::SYS_fsopen, c"sysfs".as_ptr(), FSOPEN_CLOEXEC);
        if fs < 0 {
            return Err(Error::errno("fsopen sysfs", sys::errno()));
        }
        let fs = <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fs as RawFd);
        if libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, std::ptr::null::<libc::c_char>(), std::ptr::null::<libc::c_void>(), 0) < 0 {
            return Err(Error::errno("create sysfs", sys::errno()));
        }
        let mnt = libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs);
        if mnt < 0 {
            return Err(Error::errno("fsmount sysfs", sys::errno()));
        }
        Ok(<OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(mnt as RawFd))
    }
}

/// Attach a detached mount (`detached_sysfs`) at the entry's destination beneath the rootfs.
pub fn attach_detached(root: RawFd, m: &Mount, mnt: RawFd) -> Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let target = mkdir_all_in_root(root, &m.destination, Kind::Dir)?;
    // SAFETY: both fds are open; empty paths with the *_EMPTY_PATH flags.
    let r = unsafe { libc::syscall(libc::SYS_move_mount, mnt, c"".as_ptr(), target.as_raw_fd(), c"".as_ptr(), MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) };
    if r < 0 {
        return Err(Error::errno(format!("mount sysfs on {}", m.destination), sys::errno()));
    }
    Ok(())
}

fn statvfs_flags(p: &CString) -> libc::c_ulong {
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(p.as_ptr(), &mut s) } < 0 {
        return 0;
    }
    let mut f = 0;
    for (st, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if s.f_flag & st != 0 {
            f |= ms;
        }
    }
    f
}

/// /sys/fs/cgroup: cgroup2 on a pure v2 host, else a tmpfs with one cgroup
/// (v1) mount per hierarchy — as seen from the container's cgroup namespace.
fn mount_cgroup(root: RawFd, m: &Mount, p: &Parsed, layout: Option<&crate::cgroup::Layout>) -> Result<()> {
    let flags = p.flags & !(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_REC);
    let Some(layout) = layout else { return Ok(()) };
    let target = mkdir_all_in_root(root, &m.destination, Kind::Dir)?;
    if layout.is_pure_v2() {
        sys::mount(Some(c"cgroup2"), &fd_path(&target), Some(c"cgroup2"), flags, None).map_err(|e| Error::errno("mount cgroup2", e))?;
        return Ok(());
    }
    sys::mount(Some(c"tmpfs"), &fd_path(&target), Some(c"tmpfs"), flags & !libc::MS_RDONLY, Some(c"mode=755"))
        .map_err(|e| Error::errno("mount tmpfs", e))?;
    for h in &layout.hierarchies {
        if h.v2 {
            continue; // hybrid: the container sees its v1 controllers only (as with Docker)
        }
        let name = h.mountpoint.file_name().and_then(|n| n.to_str()).unwrap_or("x");
        let dest = format!("{}/{}", m.destination.trim_end_matches('/'), name);
        let t = mkdir_all_in_root(root, &dest, Kind::Dir)?;
        let data = cstr(&h.controllers.join(","))?;
        sys::mount(Some(c"cgroup"), &fd_path(&t), Some(c"cgroup"), flags, Some(&data))
            .map_err(|e| Error::errno(format!("mount cgroup {}", h.controllers.join(",")), e))?;
    }
    // Docker's compatibility links: cpu,cpuacct etc. are not needed when each
    // controller has its own hierarchy (this host kind); combined mounts keep their name.
    if flags & libc::MS_RDONLY != 0 {
        let t = mkdir_all_in_root(root, &m.destination, Kind::Dir)?;
        sys::mount(None, &fd_path(&t), None, libc::MS_REMOUNT | libc::MS_BIND | flags, None).map_err(|e| Error::errno("remount cgroup tmpfs ro", e))?;
    }
    Ok(())
}

/// Devices and links in a fresh /dev tmpfs (runc's and crun's default set).
pub fn populate_dev(dev: RawFd) -> Result<()> {
    for (name, maj, min) in [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)] {
        let n = cstr(name)?;
        let r = unsafe { libc::mknodat(dev, n.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(maj, min)) };
        if r < 0 && sys::errno() != libc::EEXIST {
            // Not allowed to mknod (e.g. a user namespace): bind the host's node.
            let e = sys::errno();
            let fd = unsafe { libc::openat(dev, n.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o666) };
            if fd < 0 {
                return Err(Error::errno(format!("mknod /dev/{name}"), e));
            }
            unsafe { libc::close(fd) };
            let target = CString::new(format!("/proc/self/fd/{dev}/{name}")).unwrap();
            let src = CString::new(format!("/dev/{name}")).unwrap();
            sys::mount(Some(&src), &target, None, libc::MS_BIND, None).map_err(|e| Error::errno(format!("bind /dev/{name}"), e))?;
        } else {
            unsafe { libc::fchmodat(dev, n.as_ptr(), 0o666, 0) };
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        // As runc: no dangling /dev/core on kernels built without /proc/kcore.
        if link == "core" && !std::path::Path::new("/proc/kcore").exists() {
            continue;
        }
        let l = cstr(link)?;
        let t = cstr(target)?;
        let r = unsafe { libc::symlinkat(t.as_ptr(), dev, l.as_ptr()) };
        if r < 0 && sys::errno() != libc::EEXIST {
            return Err(Error::errno(format!("symlink /dev/{link}"), sys::errno()));
        }
    }
    Ok(())
}

/// The spec's device nodes beneath the rootfs: mknod with the host node's
/// mode and owner, or where mknod is refused (a user namespace) a bind of the
/// host's node, as runc does. One already there (the default set) is kept.
pub fn make_devices(root: RawFd, devices: &[crate::spec::Device]) -> Result<()> {
    for d in devices {
        let path = d.path.trim_end_matches('/');
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        if name.is_empty() || name == ".." || name == "." {
            return Err(Error::Invalid(format!("invalid device path {:?}", d.path)));
        }
        let dir = mkdir_all_in_root(root, parent, Kind::Dir)?;
        let n = cstr(name)?;
        let kind = match d.kind.as_str() {
            "c" | "u" => libc::S_IFCHR,
            "b" => libc::S_IFBLK,
            "p" => libc::S_IFIFO,
            k => return Err(Error::Invalid(format!("invalid device type {k:?} for {}", d.path))),
        };
        let perm = d.file_mode.unwrap_or(0o666) & 0o7777;
        let rdev = libc::makedev(d.major as u32, d.minor as u32);
        // The parent is an O_PATH fd from a lookup confined to the root; `name` is one component.
        let r = unsafe { libc::mknodat(dir.as_raw_fd(), n.as_ptr(), kind | perm, rdev) };
        if r == 0 {
            let r = unsafe { libc::fchownat(dir.as_raw_fd(), n.as_ptr(), d.uid, d.gid, libc::AT_SYMLINK_NOFOLLOW) };
            sys::check(r, || format!("chown {}", d.path))?;
            continue;
        }
        match sys::errno() {
            libc::EEXIST => continue,
            libc::EPERM if !d.host_path.is_empty() => {
                let node = mkdir_all_in_root(root, path, Kind::File)?;
                let src = cstr(&d.host_path)?;
                sys::mount(Some(&src), &fd_path(&node), None, libc::MS_BIND, None).map_err(|e| Error::errno(format!("bind {} to {}", d.host_path, d.path), e))?;
            }
            e => return Err(Error::errno(format!("mknod {}", d.path), e)),
        }
    }
    Ok(())
}

/// Make the mount that holds `path` private (not recursively): the mount
/// point is the longest one in /proc/self/mountinfo that `path` lies under.
pub fn make_parent_mount_private(path: &std::path::Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::errno("read mountinfo", e.raw_os_error().unwrap_or(libc::EIO)))?;
    let mut best: Option<std::path::PathBuf> = None;
    for line in info.lines() {
        let Some(point) = line.split(' ').nth(4) else { continue };
        // mountinfo escapes spaces and the like as \ooo
        let point = unescape_mountinfo(point);
        let p = std::path::Path::new(&point);
        if path.starts_with(p) && best.as_ref().is_none_or(|b| p.as_os_str().len() > b.as_os_str().len()) {
            best = Some(p.to_path_buf());
        }
    }
    let point = best.unwrap_or_else(|| "/".into());
    let c = sys::cpath(&point)?;
    sys::mount(None, &c, None, libc::MS_PRIVATE, None).map_err(|e| Error::errno(format!("make {} private", point.display()), e))
}

/// A mountinfo field with its `\ooo` escapes (space, tab, newline, backslash) undone.
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// pivot_root(".", ".") in the new root, then detach the old root stacked on top.
pub fn pivot(root: RawFd) -> Result<()> {
    let old_root = sys::open(c"/", libc::O_DIRECTORY | libc::O_PATH, 0)?;
    sys::check(unsafe { libc::fchdir(root) }, || "fchdir rootfs".into())?;
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
    sys::check(r as i32, || "pivot_root".into())?;
    // As runc: make sure "." is the old root (the kernel doesn't promise what
    // the cwd is after pivot_root), so that only its tree turns rslave (its
    // unmount must not reach the host) and the new root's mounts keep their
    // propagation (a shared bind stays shared).
    sys::check(unsafe { libc::fchdir(old_root.as_raw_fd()) }, || "fchdir old root".into())?;
    sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None).map_err(|e| Error::errno("make old root rslave", e))?;
    sys::check(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) }, || "unmount old root".into())?;
    sys::check(unsafe { libc::chdir(c"/".as_ptr()) }, || "chdir /".into())?;
    Ok(())
}

/// After pivot: hide `path` (dir -> read-only empty tmpfs, file -> /dev/null).
pub fn mask_path(path: &str) -> Result<()> {
    let c = cstr(path)?;
    let fd = match sys::openat_in_root(libc::AT_FDCWD, path, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(libc::ENOENT) | Err(libc::ENOTDIR) => return Ok(()),
        Err(e) => return Err(Error::errno(format!("open masked path {path}"), e)),
    };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    let tp = fd_path(&fd);
    let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        sys::mount(Some(c"tmpfs"), &tp, Some(c"tmpfs"), libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, Some(c"size=0k,nr_inodes=1"))
    } else {
        // Bind the /dev/null we checked, not whatever the path names by then: a
        // /dev/null swapped for a symlink would unmask procfs (CVE-2025-31133).
        let null = dev_null()?;
        sys::mount(Some(&fd_path(&null)), &tp, None, libc::MS_BIND, None)
    };
    let _ = c;
    r.map_err(|e| Error::errno(format!("mask {path}"), e))
}

/// An O_PATH fd of the container's /dev/null, refused unless it is the real
/// character device 1:3.
fn dev_null() -> Result<OwnedFd> {
    let fd = sys::openat_in_root(libc::AT_FDCWD, "/dev/null", libc::O_PATH | libc::O_NOFOLLOW).map_err(|e| Error::errno("open /dev/null", e))?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(Error::Invalid("/dev/null is not the null device: refusing to mask paths with it".into()));
    }
    Ok(fd)
}

/// After pivot: bind `path` onto itself read-only (nosuid, nodev, noexec).
pub fn readonly_path(path: &str) -> Result<()> {
    let fd = match sys::openat_in_root(libc::AT_FDCWD, path, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(libc::ENOENT) | Err(libc::ENOTDIR) => return Ok(()),
        Err(e) => return Err(Error::errno(format!("open read-only path {path}"), e)),
    };
    let tp = fd_path(&fd);
    sys::mount(Some(&tp), &tp, None, libc::MS_BIND | libc::MS_REC, None).map_err(|e| Error::errno(format!("bind {path}"), e))?;
    let fd2 = sys::openat_in_root(libc::AT_FDCWD, path, libc::O_PATH | libc::O_NOFOLLOW).map_err(|e| Error::errno(format!("open {path}"), e))?;
    let tp2 = fd_path(&fd2);
    let locked = statvfs_flags(&tp2);
    sys::mount(
        None,
        &tp2,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | locked,
        None,
    )
    .map_err(|e| Error::errno(format!("remount {path} read-only"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    fn o(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }
    #[test]
    fn options() {
        let p = parse_options(&o(&["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]));
        assert_eq!(p.flags, libc::MS_NOSUID | libc::MS_NOEXEC);
        assert_eq!(p.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        let p = parse_options(&o(&["rbind", "ro", "rslave"]));
        assert_eq!(p.flags, libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY);
        assert_eq!(p.propagation, libc::MS_SLAVE | libc::MS_REC);
        let p = parse_options(&o(&["bind", "shared"]));
        assert_eq!(p.propagation, libc::MS_SHARED);
        let p = parse_options(&o(&["rshared", "ro", "rw"]));
        assert_eq!(p.propagation, libc::MS_SHARED | libc::MS_REC);
        assert_eq!(p.flags, 0);
    }

    #[test]
    fn resolve_in_root_creates_and_stays_inside() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/../../etc", d.path().join("evil")).unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        let root = sys::open(&sys::cpath(d.path()).unwrap(), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        mkdir_all_in_root(root.as_raw_fd(), "/a/b/c", Kind::Dir).unwrap();
        assert!(d.path().join("a/b/c").is_dir());
        mkdir_all_in_root(root.as_raw_fd(), "/evil/x", Kind::File).unwrap();
        // The symlink resolves inside the root: /etc under the tempdir, not the host's.
        assert!(d.path().join("etc/x").is_file());
        assert!(!std::path::Path::new("/etc/x").exists());
    }
}
