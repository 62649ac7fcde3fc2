//! User-namespace ID maps for layers (`--userns-remap`): a layer's files are
//! owned on the host by the IDs its tar names shifted into the remapped
//! range (`shift_tree`, once a layer is unpacked), and archives made from the
//! host's files name them shifted back (`IdMap::to_container`), so images
//! look the same as on a daemon without remapping.

use crate::error::{Error, Result};
use crate::fsops::{self, fs_err};
use rustix::fs::{self as rfs, AtFlags, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

/// (container ID, host ID, size) ranges, as in /proc/PID/uid_map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap {
    pub uids: Vec<(u32, u32, u32)>,
    pub gids: Vec<(u32, u32, u32)>,
}

fn host(id: u32, ranges: &[(u32, u32, u32)]) -> Option<u32> {
    ranges.iter().find(|(c, _, n)| id >= *c && id - c < *n).map(|(c, h, _)| h + (id - c))
}

fn container(id: u32, ranges: &[(u32, u32, u32)]) -> Option<u32> {
    ranges.iter().find(|(_, h, n)| id >= *h && id - h < *n).map(|(c, h, _)| c + (id - h))
}

impl IdMap {
    /// Host IDs for container IDs (dockerd's ToHost: an unmapped ID is an error).
    pub fn to_host(&self, uid: u32, gid: u32) -> Result<(u32, u32)> {
        let u = host(uid, &self.uids).ok_or_else(|| Error::corrupt(format!("Container ID {uid} cannot be mapped to a host ID")))?;
        let g = host(gid, &self.gids).ok_or_else(|| Error::corrupt(format!("Container ID {gid} cannot be mapped to a host ID")))?;
        Ok((u, g))
    }

    /// Container IDs for host IDs; an ID outside the ranges (a file the host
    /// put there) is kept as it is.
    pub fn to_container(&self, uid: u64, gid: u64) -> (u64, u64) {
        let u = u32::try_from(uid).ok().and_then(|u| container(u, &self.uids)).map_or(uid, u64::from);
        let g = u32::try_from(gid).ok().and_then(|g| container(g, &self.gids)).map_or(gid, u64::from);
        (u, g)
    }
}

impl IdMap {
    /// Whether host IDs and container IDs can't be confused (the usual
    /// ranges, from 100000 on): then an ID already in the host ranges was
    /// shifted before and stays.
    fn disjoint(&self) -> bool {
        let apart = |rs: &[(u32, u32, u32)]| {
            rs.iter().all(|(_, h, n)| rs.iter().all(|(c, _, m)| u64::from(*h) >= u64::from(*c) + u64::from(*m) || u64::from(*h) + u64::from(*n) <= u64::from(*c)))
        };
        apart(&self.uids) && apart(&self.gids)
    }

    fn shifted(&self, uid: u32, gid: u32) -> Result<(u32, u32)> {
        if self.disjoint() {
            let u = if container(uid, &self.uids).is_some() { Some(uid) } else { None };
            let g = if container(gid, &self.gids).is_some() { Some(gid) } else { None };
            if let (Some(u), Some(g)) = (u, g) {
                return Ok((u, g));
            }
            let u = match u {
                Some(u) => u,
                None => self.to_host(uid, 0)?.0,
            };
            let g = match g {
                Some(g) => g,
                None => self.to_host(0, gid)?.1,
            };
            return Ok((u, g));
        }
        self.to_host(uid, gid)
    }
}

/// Give every entry under `root` the host IDs of the container IDs it has.
/// Everything goes through directory fds, nothing follows a symlink: the
/// tree may be inside a running container (`docker cp` into it).
/// Entries already owned by host IDs of the map are left as they are (vfs
/// and btrfs layers start as a copy of their parent, shifted already; the
/// storage driver made `root` owned by the remapped root, and a tar's `./`
/// entry may have changed that). Where host and container IDs overlap, that
/// can't be told, and `root` is left alone. chown clears set-user/group-ID
/// bits and file capabilities: both are put back.
pub fn shift_tree(root: &Path, map: &IdMap) -> Result<()> {
    let fd = rfs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| fs_err(e, || format!("open {}", root.display())))?;
    if map.disjoint() {
        shift_fd(fd.as_fd(), map, &root.display().to_string())?;
    }
    shift_dir(fd.as_fd(), map, &root.display().to_string())
}

/// Every entry of directory `dir`, depth first, through fds only (the tree
/// may be a running container's: nothing here follows a symlink).
fn shift_dir(dir: BorrowedFd<'_>, map: &IdMap, shown: &str) -> Result<()> {
    let names = fsops::list_dir(dir).map_err(|e| fs_err(e, || format!("read {shown}")))?;
    for name in names {
        let what = format!("{shown}/{}", String::from_utf8_lossy(&name));
        let fd = match rfs::openat(dir, &name[..], OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => continue, // gone meanwhile
            Err(e) => return Err(fs_err(e, || format!("open {what}"))),
        };
        shift_fd(fd.as_fd(), map, &what)?;
        let st = rfs::fstat(&fd).map_err(|e| fs_err(e, || format!("stat {what}")))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let d = rfs::openat(dir, &name[..], OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| fs_err(e, || format!("open {what}")))?;
            shift_dir(d.as_fd(), map, &what)?;
        }
    }
    Ok(())
}

/// One inode, by an O_PATH (or any) fd.
fn shift_fd(fd: BorrowedFd<'_>, map: &IdMap, what: &str) -> Result<()> {
    let st = rfs::fstat(fd).map_err(|e| fs_err(e, || format!("stat {what}")))?;
    let (uid, gid) = map.shifted(st.st_uid, st.st_gid).map_err(|e| Error::corrupt(format!("{what}: {e}")))?;
    if (uid, gid) == (st.st_uid, st.st_gid) {
        return Ok(());
    }
    let is_reg = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    // /proc/self/fd/N names exactly this inode (a regular file: no symlink to follow).
    let proc = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL");
    let caps = if is_reg { get_caps(&proc) } else { None };
    rfs::chownat(fd, "", Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)), AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| fs_err(e, || format!("chown {what}")))?;
    if is_reg && st.st_mode & 0o6000 != 0 {
        // SAFETY: proc is a valid C string.
        if unsafe { libc::chmod(proc.as_ptr(), st.st_mode & 0o7777) } < 0 {
            return Err(Error::io(format!("chmod {what}"), std::io::Error::last_os_error()));
        }
    }
    if let Some(v) = caps {
        // SAFETY: valid C strings and buffer.
        let r = unsafe { libc::setxattr(proc.as_ptr(), c"security.capability".as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        if r < 0 {
            return Err(Error::io(format!("set capabilities of {what}"), std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn get_caps(c: &CString) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    // SAFETY: buf is 64 bytes, which bounds what getxattr writes.
    let n = unsafe { libc::getxattr(c.as_ptr(), c"security.capability".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn maps_both_ways() {
        let m = IdMap { uids: vec![(0, 100000, 65536)], gids: vec![(0, 200000, 1000), (1000, 300000, 10)] };
        assert_eq!(m.to_host(0, 1005).unwrap(), (100000, 300005));
        assert!(m.to_host(65536, 0).is_err());
        assert_eq!(m.to_container(100001, 300009), (1, 1009));
        assert_eq!(m.to_container(5, 5), (5, 5));
        assert!(m.disjoint());
        assert_eq!(m.shifted(100005, 3).unwrap(), (100005, 200003));
        let overlapping = IdMap { uids: vec![(0, 1000, 65536)], gids: vec![(0, 1000, 65536)] };
        assert!(!overlapping.disjoint());
        assert_eq!(overlapping.shifted(2000, 2000).unwrap(), (3000, 3000));
    }
}
