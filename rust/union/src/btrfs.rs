//! btrfs subvolumes through the kernel's ioctls (no libbtrfs): create,
//! snapshot, recursive delete, and the "is this a subvolume" test.

use crate::error::{Context, Error, Result};
use crate::fstype;
use crate::sys::cvt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

const BTRFS_PATH_NAME_MAX: usize = 4087;
const BTRFS_SUBVOL_NAME_MAX: usize = 4039;
const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;
/// The inode number of every subvolume's root directory.
pub const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; BTRFS_SUBVOL_NAME_MAX + 1],
}

const fn iow(nr: u64, size: usize) -> u64 {
    (1 << 30) | ((size as u64) << 16) | (0x94 << 8) | nr
}

const BTRFS_IOC_SUBVOL_CREATE: u64 = iow(14, std::mem::size_of::<VolArgs>());
const BTRFS_IOC_SNAP_DESTROY: u64 = iow(15, std::mem::size_of::<VolArgs>());
const BTRFS_IOC_SNAP_CREATE_V2: u64 = iow(23, std::mem::size_of::<VolArgsV2>());

const _: () = assert!(std::mem::size_of::<VolArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);
const _: () = assert!(BTRFS_IOC_SUBVOL_CREATE == 0x5000_940E);
const _: () = assert!(BTRFS_IOC_SNAP_CREATE_V2 == 0x5000_9417);

fn open_dir(p: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(p)
        .ctx("open", p)
}

/// The parent directory (opened) and the final name of `path`.
fn split(path: &Path, max: usize) -> Result<(File, Vec<u8>)> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Storage(format!("{}: not a valid subvolume path", path.display())))?;
    let name = name.as_bytes().to_vec();
    if name.len() > max || name == b"." || name == b".." {
        return Err(Error::Storage(format!("{}: invalid subvolume name", path.display())));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((open_dir(&parent)?, name))
}

fn on_btrfs(dir: &Path) -> Result<()> {
    if fstype::fs_magic(dir)? != fstype::BTRFS {
        return Err(Error::Storage(format!("{} is not on a btrfs filesystem", dir.display())));
    }
    Ok(())
}

fn ioctl_err(op: &'static str, path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) => {
            Error::Storage(format!("{op} {}: not on btrfs ({e})", path.display()))
        }
        _ => Error::io(op, path, e),
    }
}

/// Create an empty subvolume at `path` (its parent must exist, on btrfs).
pub fn subvolume_create(path: &Path) -> Result<()> {
    let (parent, name) = split(path, BTRFS_PATH_NAME_MAX)?;
    let mut a = VolArgs { fd: 0, name: [0; BTRFS_PATH_NAME_MAX + 1] };
    a.name[..name.len()].copy_from_slice(&name);
    cvt(unsafe { libc::ioctl(parent.as_raw_fd(), BTRFS_IOC_SUBVOL_CREATE as _, &a) })
        .map_err(|e| ioctl_err("btrfs subvolume create", path, e))?;
    Ok(())
}

/// Snapshot subvolume `src` as `dst` (a new name in an existing directory on
/// the same btrfs filesystem). Copy-on-write, O(1).
pub fn subvolume_snapshot(src: &Path, dst: &Path, readonly: bool) -> Result<()> {
    let s = open_dir(src)?;
    let (parent, name) = split(dst, BTRFS_SUBVOL_NAME_MAX)?;
    let mut a = VolArgsV2 {
        fd: s.as_raw_fd() as i64,
        transid: 0,
        flags: if readonly { BTRFS_SUBVOL_RDONLY } else { 0 },
        unused: [0; 4],
        name: [0; BTRFS_SUBVOL_NAME_MAX + 1],
    };
    a.name[..name.len()].copy_from_slice(&name);
    cvt(unsafe { libc::ioctl(parent.as_raw_fd(), BTRFS_IOC_SNAP_CREATE_V2 as _, &a) }).map_err(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) && !is_subvolume(src).unwrap_or(false) {
            Error::Storage(format!("btrfs snapshot {}: source is not a btrfs subvolume", src.display()))
        } else {
            ioctl_err("btrfs subvolume snapshot", dst, e)
        }
    })?;
    Ok(())
}

/// True if `path` is the root of a btrfs subvolume (inode 256 on btrfs).
pub fn is_subvolume(path: &Path) -> Result<bool> {
    let m = fs::metadata(path).ctx("stat", path)?;
    if !m.is_dir() || m.ino() != BTRFS_FIRST_FREE_OBJECTID {
        return Ok(false);
    }
    Ok(fstype::fs_magic(path)? == fstype::BTRFS)
}

fn destroy(path: &Path) -> io::Result<()> {
    let (parent, name) = split(path, BTRFS_PATH_NAME_MAX).map_err(|e| match e {
        Error::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    })?;
    let mut a = VolArgs { fd: 0, name: [0; BTRFS_PATH_NAME_MAX + 1] };
    a.name[..name.len()].copy_from_slice(&name);
    cvt(unsafe { libc::ioctl(parent.as_raw_fd(), BTRFS_IOC_SNAP_DESTROY as _, &a) }).map(drop)
}

/// Nested subvolumes directly or indirectly below `root` (not crossing into
/// them), found by a walk that stops at each subvolume boundary.
fn nested(root: &Path, dev: u64, out: &mut Vec<PathBuf>) -> Result<()> {
    for ent in fs::read_dir(root).ctx("readdir", root)? {
        let ent = ent.ctx("readdir", root)?;
        if !ent.file_type().ctx("stat", &ent.path())?.is_dir() {
            continue;
        }
        let p = ent.path();
        let m = fs::symlink_metadata(&p).ctx("stat", &p)?;
        if m.ino() == BTRFS_FIRST_FREE_OBJECTID && m.dev() != dev {
            out.push(p);
        } else if m.dev() == dev {
            nested(&p, dev, out)?;
        }
    }
    Ok(())
}

/// Delete subvolume `path` and every subvolume nested in it.
pub fn subvolume_delete(path: &Path) -> Result<()> {
    on_btrfs(path)?;
    if !is_subvolume(path)? {
        return Err(Error::Storage(format!("{} is not a btrfs subvolume", path.display())));
    }
    match destroy(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
        Err(e) => return Err(Error::io("btrfs subvolume delete", path, e)),
    }
    // It holds nested subvolumes: delete them first (depth first).
    let dev = fs::metadata(path).ctx("stat", path)?.dev();
    let mut subs = Vec::new();
    nested(path, dev, &mut subs)?;
    for s in subs {
        subvolume_delete(&s)?;
    }
    destroy(path).map_err(|e| Error::io("btrfs subvolume delete", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_btrfs() {
        let t = tempfile::tempdir().unwrap();
        if fstype::fs_magic(t.path()).unwrap() == fstype::BTRFS {
            return;
        }
        assert!(!is_subvolume(t.path()).unwrap());
        assert!(matches!(subvolume_delete(t.path()), Err(Error::Storage(_))));
        let e = subvolume_create(&t.path().join("sv")).unwrap_err();
        assert!(matches!(e, Error::Storage(_) | Error::Io { .. }), "{e}");
    }
}
