//! Finding the executable to run, as Go's exec.LookPath (and so runc) does,
//! with Docker's messages and exit codes (127 not found, 126 not runnable).

use crate::error::{Error, Result};
use crate::sys::{self, cstr};
use std::ffi::CString;

fn is_executable(path: &CString) -> std::result::Result<(), i32> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::stat(path.as_ptr(), &mut st) } < 0 {
        return Err(sys::errno());
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        // Go's LookPath (and so runc) calls a directory "permission denied".
        return Err(libc::EACCES);
    }
    if st.st_mode & 0o111 == 0 {
        return Err(libc::EACCES);
    }
    Ok(())
}

/// Go's exec.LookPath, with Docker's messages and exit codes.
pub fn lookup(name: &str, path: &str) -> Result<CString> {
    if name.contains('/') {
        let c = cstr(name)?;
        return match is_executable(&c) {
            Ok(()) => Ok(c),
            Err(libc::ENOENT) | Err(libc::ENOTDIR) => {
                Err(Error::Exec { msg: format!("exec: \"{name}\": stat {name}: no such file or directory"), code: 127 })
            }
            Err(libc::EACCES) => Err(Error::Exec { msg: format!("exec: \"{name}\": permission denied"), code: 126 }),
            Err(e) => Err(Error::Exec { msg: format!("exec: \"{name}\": {}", crate::error::strerror(e)), code: 126 }),
        };
    }
    if !name.is_empty() {
        for dir in path.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let cand = cstr(&format!("{dir}/{name}"))?;
            if is_executable(&cand).is_ok() {
                return Ok(cand);
            }
        }
    }
    Err(Error::Exec { msg: format!("exec: \"{name}\": executable file not found in $PATH"), code: 127 })
}
