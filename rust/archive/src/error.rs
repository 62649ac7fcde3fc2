//! The archive crate's error type. The bindings map each variant onto a
//! `dockyard.errors` class: `Corrupt` → LayerCorrupt, `Unsafe` → UnsafePath,
//! `Io` → OSError (with errno), `Aborted` → LayerCorrupt("aborted").

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An OS error on the target (or source) file system, with what we were doing.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// The stream is not a valid (compressed) tar, or is truncated.
    #[error("{0}")]
    Corrupt(String),
    /// An entry tried to leave the target root (or otherwise unsafe content).
    #[error("{0}")]
    Unsafe(String),
    /// The caller aborted the extraction.
    #[error("extraction aborted")]
    Aborted,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }
    pub fn unsafe_path(msg: impl Into<String>) -> Self {
        Error::Unsafe(msg.into())
    }
    /// The raw errno for `Io`, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Attach context to rustix/io results.
pub(crate) trait Ctx<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::io(f(), io::Error::from(e)))
    }
}

impl<T> Ctx<T> for io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::io(f(), e))
    }
}

/// Printable form of a path held as bytes.
pub(crate) fn show(p: &[u8]) -> String {
    if p.is_empty() {
        return "/".to_string();
    }
    String::from_utf8_lossy(p).into_owned()
}
