use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, in three kinds the bindings map onto Python:
/// `Io` → OSError (errno kept, with the path), `Mount` → `dockyard.errors.MountError`,
/// `Storage` → `dockyard.errors.StorageDriverError`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Mount(String),
    #[error("{0}")]
    Storage(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Error::Io { op, path: path.to_path_buf(), source }
    }

    pub fn last_os(op: &'static str, path: &Path) -> Self {
        Self::io(op, path, io::Error::last_os_error())
    }

    /// The errno of an `Io` error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Attach an operation name and a path to an `io::Result`.
pub(crate) trait Context<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
