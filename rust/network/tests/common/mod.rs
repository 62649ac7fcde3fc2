//! Test isolation: each test body runs on a thread that first unshares its own
//! network and mount namespaces (mounts made private), so nothing reaches the
//! host's. When that thread exits, its namespaces, the netns bind mounts in
//! them and every link made in them go away, whether the test passed or not.

#![allow(dead_code)]

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Run `f(tmpdir)` isolated; skipped (with a note) unless root.
pub fn isolated<F: FnOnce(&Path) + Send>(f: F) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            unsafe {
                assert_eq!(libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS), 0, "unshare: {}", std::io::Error::last_os_error());
                let root = CString::new("/").unwrap();
                let rc = libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null());
                assert_eq!(rc, 0, "make / private: {}", std::io::Error::last_os_error());
            }
            f(&path)
        })
        .join()
    });
    // The bind mounts lived only in the test's mount namespace: here the
    // namespace files are plain files that the TempDir removes.
    drop(dir);
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

/// Run `f` on a thread inside the namespace at `ns` (for checks that need to
/// be made from in there: sockets, /proc/thread-self/net).
pub fn in_ns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(ns).expect("open netns");
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

pub fn ns_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
