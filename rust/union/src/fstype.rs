//! The backing filesystem of a path, named as Docker names it
//! (`daemon/graphdriver/driver_linux.go`).

use crate::error::{Context, Result};
use crate::sys;
use std::path::Path;

pub const BTRFS: u32 = 0x9123_683E;
pub const OVERLAY: u32 = 0x794C_7630;
pub const TMPFS: u32 = 0x0102_1994;
pub const EXTFS: u32 = 0x0000_EF53;
pub const XFS: u32 = 0x5846_5342;
pub const ZFS: u32 = 0x2FC1_2FC1;
pub const NFS: u32 = 0x0000_6969;
pub const AUFS: u32 = 0x6175_6673;

const NAMES: &[(u32, &str)] = &[
    (AUFS, "aufs"),
    (BTRFS, "btrfs"),
    (0x28cd_3d45, "cramfs"),
    (0x0000_f15f, "ecryptfs"),
    (EXTFS, "extfs"),
    (0xF2F5_2010, "f2fs"),
    (0x4750_4653, "gpfs"),
    (0x0000_72b6, "jffs2"),
    (0x3153_464a, "jfs"),
    (NFS, "nfs"),
    (0x8584_58f6, "ramfs"),
    (0x5265_4973, "reiserfs"),
    (0x0000_517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x7371_7368, "squashfs"),
    (TMPFS, "tmpfs"),
    (0xa501_FCF5, "vxfs"),
    (XFS, "xfs"),
    (ZFS, "zfs"),
    (OVERLAY, "overlayfs"),
    (0x6573_5546, "fuse"),
    (0x00c3_6400, "ceph"),
    (0x0000_9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x0000_1cd1, "devpts"),
    (0x9041_934, "gfs2"),
    (0x0102_1997, "v9fs"),
    (0xde5e_81e4, "efivarfs"),
    (0x2011_BAB0, "exfat"),
    (0x0000_4d44, "msdos"),
    (0x5346_544e, "ntfs"),
    (0x7366_746e, "ntfs3"),
    (0xE0F5_E1E2, "erofs"),
    (0x2468_7324, "bcachefs"),
];

/// The `statfs` magic number of the filesystem holding `path`.
pub fn fs_magic(path: &Path) -> Result<u32> {
    let st = sys::statfs(path).ctx("statfs", path)?;
    Ok(st.f_type as u32)
}

/// Docker's name for a filesystem magic: `extfs`, `xfs`, `btrfs`, `tmpfs`,
/// `overlayfs`, `zfs`... and `<unknown>` for anything else.
pub fn name_of(magic: u32) -> &'static str {
    NAMES.iter().find(|(m, _)| *m == magic).map(|(_, n)| *n).unwrap_or("<unknown>")
}

/// The backing filesystem name of `path` (see [`name_of`]).
pub fn fs_type(path: &Path) -> Result<String> {
    Ok(name_of(fs_magic(path)?).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_is_proc() {
        assert_eq!(fs_type(Path::new("/proc")).unwrap(), "proc");
    }

    #[test]
    fn missing_path_is_io_error() {
        let e = fs_type(Path::new("/nonexistent/xyz")).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn names() {
        assert_eq!(name_of(EXTFS), "extfs");
        assert_eq!(name_of(OVERLAY), "overlayfs");
        assert_eq!(name_of(1), "<unknown>");
    }
}

/// Whether the filesystem holding the directory `dir` fills in `d_type` in
/// directory entries (overlayfs needs it; xfs made with ftype=0 doesn't).
/// Creates and removes a scratch directory inside `dir`.
pub fn supports_d_type(dir: &Path) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = dir.join(format!(".d_type-check-{}-{n}", std::process::id()));
    std::fs::create_dir(&scratch).ctx("mkdir", &scratch)?;
    let result = (|| {
        std::fs::write(scratch.join("f"), b"").ctx("create", &scratch)?;
        let c = sys::cstr(&scratch).ctx("opendir", &scratch)?;
        let d = unsafe { libc::opendir(c.as_ptr()) };
        if d.is_null() {
            return Err(crate::Error::last_os("opendir", &scratch));
        }
        let mut ok = false;
        loop {
            let e = unsafe { libc::readdir64(d) };
            if e.is_null() {
                break;
            }
            let name = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) };
            if name.to_bytes() == std::ffi::OsStr::new("f").as_bytes() {
                ok = unsafe { (*e).d_type } == libc::DT_REG;
            }
        }
        unsafe { libc::closedir(d) };
        Ok(ok)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod dtype_tests {
    #[test]
    fn tmp_has_d_type() {
        let t = tempfile::tempdir().unwrap();
        assert!(super::supports_d_type(t.path()).unwrap());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
