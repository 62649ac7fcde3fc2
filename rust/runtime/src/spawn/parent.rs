//! The parent's side after the clone: take the pty master from the console
//! socket, then read the child's one message on the sync pipe (EOF: it
//! exec'd; `R`: parked at the start gate; `E`: it failed, and is reaped).

use super::Process;
use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub(super) enum Msg {
    Exec,
    Ready,
    Err(Error),
}

pub(super) fn read_msg(fd: RawFd) -> Result<Msg> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr() as *mut libc::c_void, buf.len() - len) };
        if n < 0 {
            if sys::errno() == libc::EINTR {
                continue;
            }
            return Err(Error::os("read sync pipe"));
        }
        len += n as usize;
        if n == 0 || buf[0] == b'R' || len == buf.len() {
            break;
        }
    }
    if len == 0 {
        return Ok(Msg::Exec);
    }
    if buf[0] == b'R' {
        return Ok(Msg::Ready);
    }
    if buf[0] == b'E' && len >= 5 {
        let code = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
        let msg = String::from_utf8_lossy(&buf[5..len]).into_owned();
        return Ok(Msg::Err(Error::Exec { msg, code }));
    }
    Err(Error::Invalid("garbled message from container init".into()))
}

pub(super) fn reap(pid: i32) {
    let mut st = 0;
    unsafe {
        while libc::waitpid(pid, &mut st, libc::__WALL) < 0 && sys::errno() == libc::EINTR {}
    }
}

pub(super) fn finish_parent(
    pid: i32,
    pidfd: OwnedFd,
    sync_r: OwnedFd,
    sync_w: OwnedFd,
    gate: Option<(OwnedFd, OwnedFd)>,
    console: Option<(OwnedFd, OwnedFd)>,
) -> Result<Process> {
    drop(sync_w);
    let gate_w = gate.map(|(r, w)| {
        drop(r);
        w
    });
    let mut pty_master = None;
    if let Some((mine, theirs)) = console {
        drop(theirs);
        pty_master = sys::recv_fd(mine.as_raw_fd())?;
    }
    let msg = read_msg(sync_r.as_raw_fd());
    let msg = match msg {
        Ok(m) => m,
        Err(e) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap(pid);
            return Err(e);
        }
    };
    match msg {
        Msg::Exec => Ok(Process { pid, pidfd, pty_master, cgroup: None, gate: None, sync: None }),
        Msg::Ready => Ok(Process { pid, pidfd, pty_master, cgroup: None, gate: gate_w, sync: Some(sync_r) }),
        Msg::Err(e) => {
            reap(pid);
            Err(e)
        }
    }
}
