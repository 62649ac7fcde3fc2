//! Overlay mounts through mount(2), and unmounts.
//!
//! Mount data is capped at one page. Deep images keep it short the way moby's
//! overlay2 does: lower dirs are short relative links (`l/<26 chars>`) and the
//! mount runs with its working directory set to the driver home. The chdir
//! happens in a short-lived helper thread that first leaves the process' shared
//! fs context (`unshare(CLONE_FS)`), so the caller's cwd never changes and no
//! fork is needed in a multi-threaded process.

use crate::error::{Context, Error, Result};
use crate::sys::{cstr, cvt};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn page_size() -> usize {
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

/// Escape the characters overlayfs treats specially in its options.
fn escape(p: &Path, out: &mut Vec<u8>) {
    for &b in p.as_os_str().as_bytes() {
        if b == b',' || b == b':' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// The overlay mount data string for these layers (lowers uppermost first).
pub fn mount_data(
    lowers: &[PathBuf],
    upper: Option<&Path>,
    work: Option<&Path>,
    options: Option<&str>,
) -> Result<Vec<u8>> {
    if lowers.is_empty() {
        return Err(Error::Mount("overlay mount needs at least one lower directory".into()));
    }
    if upper.is_some() != work.is_some() {
        return Err(Error::Mount("overlay mount needs both upper and work directories, or neither".into()));
    }
    let mut d = Vec::with_capacity(256);
    if let Some(o) = options.filter(|o| !o.is_empty()) {
        d.extend_from_slice(o.as_bytes());
        d.push(b',');
    }
    d.extend_from_slice(b"lowerdir=");
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            d.push(b':');
        }
        escape(l, &mut d);
    }
    if let (Some(u), Some(w)) = (upper, work) {
        d.extend_from_slice(b",upperdir=");
        escape(u, &mut d);
        d.extend_from_slice(b",workdir=");
        escape(w, &mut d);
    }
    Ok(d)
}

/// Mount overlayfs on `target`.
///
/// `lowers` are uppermost first. Without `upper`/`work` the mount is read-only
/// (overlayfs then needs two lowers or more on older kernels). With `cwd`, the
/// relative paths in `lowers`/`upper`/`work` resolve against it. `options` are
/// extra comma-separated overlay options put in front (e.g. `index=off`).
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<&Path>,
    work: Option<&Path>,
    target: &Path,
    cwd: Option<&Path>,
    options: Option<&str>,
) -> Result<()> {
    let limit = page_size() - 1;
    // Whole paths when they fit in the page: no helper thread to chdir (a
    // tenth of a millisecond per mount).
    let whole = match cwd {
        Some(dir) => {
            let abs: Vec<PathBuf> = lowers.iter().map(|l| dir.join(l)).collect();
            let (u, w) = (upper.map(|u| dir.join(u)), work.map(|w| dir.join(w)));
            Some(mount_data(&abs, u.as_deref(), w.as_deref(), options)?).filter(|d| d.len() <= limit)
        }
        None => None,
    };
    let (mut data, cwd) = match whole {
        Some(d) => (d, None),
        None => (mount_data(lowers, upper, work, options)?, cwd),
    };
    if data.len() > limit {
        return Err(Error::Mount(format!(
            "overlay mount data for {} is {} bytes, over the {} byte page limit ({} lower layers); \
             use short relative lower paths with cwd",
            target.display(),
            data.len(),
            limit,
            lowers.len()
        )));
    }
    data.push(0);
    let c_target = cstr(target).ctx("mount", target)?;
    let flags: libc::c_ulong = if upper.is_none() { libc::MS_RDONLY } else { 0 };

    let do_mount = |data: &[u8]| -> io::Result<()> {
        cvt(unsafe {
            libc::mount(
                c"overlay".as_ptr(),
                c_target.as_ptr(),
                c"overlay".as_ptr(),
                flags,
                data.as_ptr() as *const libc::c_void,
            )
        })
        .map(drop)
    };

    let res = match cwd {
        None => do_mount(&data),
        Some(dir) => {
            let c_dir = cstr(dir).ctx("chdir", dir)?;
            let data = &data;
            let r: std::thread::Result<std::result::Result<io::Result<()>, io::Error>> = std::thread::scope(|s| {
                s.spawn(move || {
                    // Private fs context for this thread only: chdir can't leak.
                    cvt(unsafe { libc::unshare(libc::CLONE_FS) })?;
                    cvt(unsafe { libc::chdir(c_dir.as_ptr()) })?;
                    Ok(do_mount(data))
                })
                .join()
            });
            match r {
                Ok(Ok(inner)) => inner,
                Ok(Err(e)) => return Err(Error::io("chdir", dir, e)),
                Err(_) => return Err(Error::Mount("overlay mount helper thread panicked".into())),
            }
        }
    };
    res.map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::ENODEV) => " (the kernel has no overlay filesystem)",
            Some(libc::EINVAL) => " (see dmesg for overlayfs' reason)",
            _ => "",
        };
        let shown = String::from_utf8_lossy(&data[..data.len() - 1]);
        let shown: String = if shown.len() > 300 { format!("{}...", &shown[..300]) } else { shown.into_owned() };
        Error::Mount(format!("mount overlay on {}: {}{}; data: {}", target.display(), e, hint, shown))
    })
}

/// Mount a private tmpfs of at most `size` bytes on `target` (nosuid,
/// nodev, the root directory mode 0700): scratch space that never reaches
/// the disk, such as a build context being unpacked.
pub fn mount_tmpfs(target: &Path, size: u64) -> Result<()> {
    let c_target = cstr(target).ctx("mount", target)?;
    let data = format!("size={size},mode=0700\0");
    cvt(unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            c_target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr() as *const libc::c_void,
        )
    })
    .map(drop)
    .map_err(|e| Error::Mount(format!("mount tmpfs on {}: {e}", target.display())))
}

/// Unmount `target`; `detach` makes it lazy (MNT_DETACH). A path that is not
/// a mount point gives `Error::Mount("... is not a mount point")`; a missing
/// path gives an `Io` error with ENOENT.
pub fn unmount(target: &Path, detach: bool) -> Result<()> {
    let c = cstr(target).ctx("umount", target)?;
    let mut flags = libc::UMOUNT_NOFOLLOW;
    if detach {
        flags |= libc::MNT_DETACH;
    }
    match cvt(unsafe { libc::umount2(c.as_ptr(), flags) }) {
        Ok(_) => Ok(()),
        Err(e) => match e.raw_os_error() {
            Some(libc::EINVAL) => Err(Error::Mount(format!("unmount {}: not a mount point", target.display()))),
            Some(libc::EBUSY) => Err(Error::Mount(format!("unmount {}: device or resource busy", target.display()))),
            _ => Err(Error::io("umount", target, e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn is_root() -> bool {
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn data_string() {
        let d = mount_data(
            &[PathBuf::from("l/A"), PathBuf::from("l/B:x")],
            Some(Path::new("id/diff")),
            Some(Path::new("id/work")),
            Some("index=off"),
        )
        .unwrap();
        assert_eq!(d, b"index=off,lowerdir=l/A:l/B\\:x,upperdir=id/diff,workdir=id/work");
        assert!(mount_data(&[], None, None, None).is_err());
        assert!(mount_data(&[PathBuf::from("a")], Some(Path::new("u")), None, None).is_err());
    }

    #[test]
    fn too_long_is_refused() {
        let lowers: Vec<PathBuf> = (0..200).map(|i| PathBuf::from(format!("/some/long/path/number/{i:040}"))).collect();
        let e = mount_overlay(&lowers, None, None, Path::new("/nonexistent"), None, None).unwrap_err();
        assert!(matches!(e, Error::Mount(ref m) if m.contains("page limit")), "{e}");
    }

    #[test]
    fn unmount_not_mounted() {
        let t = tempfile::tempdir().unwrap();
        if !is_root() {
            return;
        }
        let e = unmount(t.path(), false).unwrap_err();
        assert!(matches!(e, Error::Mount(ref m) if m.contains("not a mount point")), "{e}");
        let e = unmount(&t.path().join("missing"), false).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn mount_relative_and_unmount() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let home = t.path();
        for d in ["a", "b", "u", "w", "m"] {
            fs::create_dir(home.join(d)).unwrap();
        }
        fs::write(home.join("a/fa"), "a").unwrap();
        fs::write(home.join("b/fb"), "b").unwrap();
        fs::write(home.join("b/fa"), "under").unwrap();
        let cwd_before = std::env::current_dir().unwrap();
        let r = mount_overlay(
            &[PathBuf::from("a"), PathBuf::from("b")],
            Some(Path::new("u")),
            Some(Path::new("w")),
            &home.join("m"),
            Some(home),
            None,
        );
        if let Err(Error::Mount(m)) = &r {
            if m.contains("Operation not permitted") || m.contains("no overlay") {
                eprintln!("skipped: {m}");
                return;
            }
        }
        r.unwrap();
        assert_eq!(std::env::current_dir().unwrap(), cwd_before);
        assert_eq!(fs::read_to_string(home.join("m/fa")).unwrap(), "a");
        assert_eq!(fs::read_to_string(home.join("m/fb")).unwrap(), "b");
        fs::write(home.join("m/new"), "n").unwrap();
        unmount(&home.join("m"), false).unwrap();
        assert_eq!(fs::read_to_string(home.join("u/new")).unwrap(), "n");
        // read-only, two lowers
        mount_overlay(&[home.join("a"), home.join("b")], None, None, &home.join("m"), None, None).unwrap();
        assert!(fs::write(home.join("m/x"), "x").is_err());
        unmount(&home.join("m"), true).unwrap();
    }

    #[test]
    fn relative_paths_when_whole_ones_are_too_long() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("x".repeat(40));
        fs::create_dir(&home).unwrap();
        // 120 lowers of 30 bytes fit the page as relative paths, not whole
        let lowers: Vec<PathBuf> = (0..120).map(|i| PathBuf::from(format!("{i:030}"))).collect();
        for l in &lowers {
            fs::create_dir(home.join(l)).unwrap();
        }
        fs::write(home.join(&lowers[119]).join("deep"), "d").unwrap();
        for d in ["u", "w", "m"] {
            fs::create_dir(home.join(d)).unwrap();
        }
        let whole: Vec<PathBuf> = lowers.iter().map(|l| home.join(l)).collect();
        assert!(mount_data(&whole, None, None, None).unwrap().len() > page_size());
        let r = mount_overlay(&lowers, Some(Path::new("u")), Some(Path::new("w")), &home.join("m"), Some(&home), None);
        if let Err(Error::Mount(m)) = &r {
            if m.contains("Operation not permitted") || m.contains("no overlay") {
                eprintln!("skipped: {m}");
                return;
            }
        }
        r.unwrap();
        assert_eq!(fs::read_to_string(home.join("m/deep")).unwrap(), "d");
        unmount(&home.join("m"), true).unwrap();
    }
}
