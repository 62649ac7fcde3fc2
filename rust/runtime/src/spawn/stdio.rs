//! The child's stdio: the caller's fds dup'd onto 0-2, or a new pty in the
//! container's devpts whose master goes back over the console socket.

use super::Stdio;
use crate::error::Result;
use crate::spec::Spec;
use crate::sys;
use std::os::fd::{AsRawFd, RawFd};

pub(super) fn stdio_dup(io: &Stdio) -> Result<()> {
    // Move out of the way first: the source fds may be 0..2 themselves.
    let hi: Vec<RawFd> = [io.stdin, io.stdout, io.stderr]
        .iter()
        .map(|fd| sys::check(unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) }, || format!("dup fd {fd}")))
        .collect::<Result<_>>()?;
    for (i, fd) in hi.iter().enumerate() {
        sys::check(unsafe { libc::dup2(*fd, i as RawFd) }, || "dup2 stdio".into())?;
        unsafe { libc::close(*fd) };
    }
    Ok(())
}

pub(super) fn setup_console(spec: &Spec, sock: RawFd) -> Result<()> {
    let master = sys::open(c"/dev/pts/ptmx", libc::O_RDWR | libc::O_NOCTTY, 0)
        .or_else(|_| sys::open(c"/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY, 0))?;
    let zero: libc::c_int = 0;
    sys::check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &zero) }, || "unlockpt".into())?;
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    let slave = sys::owned(slave, || "open pty peer".into())?;
    if let Some((rows, cols)) = spec.console_size {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    if spec.user.uid != 0 {
        unsafe { libc::fchown(slave.as_raw_fd(), spec.user.uid, u32::MAX) };
    }
    // /dev/console -> the pty (runc does the same), when /dev is ours.
    if let Ok(c) = sys::open(c"/dev/console", libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW, 0o600) {
        drop(c);
        let _ = sys::mount(Some(&sys::fd_path(&slave)), c"/dev/console", None, libc::MS_BIND, None);
    }
    sys::send_fd(sock, master.as_raw_fd())?;
    drop(master);
    sys::check(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) }, || "set controlling terminal".into())?;
    for i in 0..3 {
        sys::check(unsafe { libc::dup2(slave.as_raw_fd(), i) }, || "dup2 pty".into())?;
    }
    Ok(())
}
