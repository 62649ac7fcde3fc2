//! A byte relay between two connected stream sockets, in the kernel: each
//! direction on a thread of its own that `splice`s through a pipe, so the
//! bytes never reach user space (the rootless daemon's published ports: the
//! host's side and the container's). An end's EOF is passed on as a
//! `shutdown(SHUT_WR)` of the other; the descriptors close once both
//! directions are done and the handle is gone.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::{Error, Result};

/// Bytes asked of each splice (the pipe is grown to this where allowed).
const CHUNK: usize = 1 << 20;
/// The pump only loops over syscalls.
const THREAD_STACK: usize = 64 * 1024;

/// The running relay: [`Relay::stop`] cuts it, [`Relay::done`] says whether
/// both directions ended.
pub struct Relay {
    fds: Arc<(OwnedFd, OwnedFd)>,
    finished: Arc<AtomicUsize>,
}

impl Relay {
    /// Shut both sockets down: the pumps see EOF or an error and end.
    pub fn stop(&self) {
        // SAFETY: shutdown(2) on descriptors this relay keeps open.
        unsafe {
            libc::shutdown(self.fds.0.as_raw_fd(), libc::SHUT_RDWR);
            libc::shutdown(self.fds.1.as_raw_fd(), libc::SHUT_RDWR);
        }
    }

    pub fn done(&self) -> bool {
        self.finished.load(Ordering::Acquire) == 2
    }
}

/// Relay `a` <-> `b` (blocking sockets) until both directions end.
pub fn relay(a: OwnedFd, b: OwnedFd) -> Result<Relay> {
    let fds = Arc::new((a, b));
    let finished = Arc::new(AtomicUsize::new(0));
    for forward in [true, false] {
        let (f, n) = (fds.clone(), finished.clone());
        let spawned = std::thread::Builder::new().name("dockyard-relay".into()).stack_size(THREAD_STACK).spawn(move || {
            let (src, dst) = if forward { (f.0.as_raw_fd(), f.1.as_raw_fd()) } else { (f.1.as_raw_fd(), f.0.as_raw_fd()) };
            pump(src, dst);
            // SAFETY: shutdown(2) on a descriptor `f` keeps open.
            unsafe { libc::shutdown(dst, libc::SHUT_WR) };
            n.fetch_add(1, Ordering::AcqRel);
        });
        if let Err(e) = spawned {
            let r = Relay { fds, finished };
            r.stop();
            return Err(Error::os("spawn relay thread", e));
        }
    }
    Ok(Relay { fds, finished })
}

fn pump(src: RawFd, dst: RawFd) {
    let mut p = [0 as libc::c_int; 2];
    // SAFETY: a two-int array for pipe2(2).
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    // SAFETY: fresh descriptors owned here from now on.
    let (pr, pw): (OwnedFd, OwnedFd) = unsafe { (std::os::fd::FromRawFd::from_raw_fd(p[0]), std::os::fd::FromRawFd::from_raw_fd(p[1])) };
    // Best effort: a user over its pipe-buffer quota keeps the default size.
    // SAFETY: fcntl on our own pipe.
    unsafe { libc::fcntl(pw.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
    // No SPLICE_F_MORE: like MSG_MORE it would cork what a slow reader left.
    let flags = libc::SPLICE_F_MOVE;
    loop {
        // SAFETY: splice(2) between descriptors open for the whole loop.
        let n = unsafe { libc::splice(src, std::ptr::null_mut(), pw.as_raw_fd(), std::ptr::null_mut(), CHUNK, flags) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            return;
        }
        let mut left = n as usize;
        while left > 0 {
            // SAFETY: as above.
            let m = unsafe { libc::splice(pr.as_raw_fd(), std::ptr::null_mut(), dst, std::ptr::null_mut(), left, flags) };
            if m < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if m <= 0 {
                return;
            }
            left -= m as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn relays_both_ways_and_passes_eof_on() {
        let (mut a, a_inner) = UnixStream::pair().unwrap();
        let (b_inner, mut b) = UnixStream::pair().unwrap();
        let r = relay(a_inner.into(), b_inner.into()).unwrap();
        let big = vec![7u8; 3 << 20];
        let writer = {
            let mut a = a.try_clone().unwrap();
            let big = big.clone();
            std::thread::spawn(move || {
                a.write_all(&big).unwrap();
                a.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, big);
        b.write_all(b"back").unwrap();
        b.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        a.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"back");
        for _ in 0..200 {
            if r.done() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(r.done());
    }

    #[test]
    fn stop_cuts_an_idle_relay() {
        let (_a, a_inner) = UnixStream::pair().unwrap();
        let (b_inner, _b) = UnixStream::pair().unwrap();
        let r = relay(a_inner.into(), b_inner.into()).unwrap();
        r.stop();
        for _ in 0..200 {
            if r.done() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(r.done());
    }
}
