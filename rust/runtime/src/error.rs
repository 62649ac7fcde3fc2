use std::fmt;

/// Errors from the runtime. `Exec` is a failure inside the container's setup
/// (reported by the child over the sync pipe) with the exit code Docker uses:
/// 127 command not found, 126 not executable, 128 any other setup failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    Os { op: String, errno: i32 },
    Exec { msg: String, code: i32 },
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn os(op: impl Into<String>) -> Error {
        Error::Os { op: op.into(), errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) }
    }
    pub fn errno(op: impl Into<String>, errno: i32) -> Error {
        Error::Os { op: op.into(), errno }
    }
    /// The exit code a container that failed this way gets (Docker: 127/126/128).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { code, .. } => *code,
            _ => 128,
        }
    }
    pub fn raw_errno(&self) -> Option<i32> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    // "No such file or directory (os error 2)" -> Go's lower-case wording.
    let s = match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os { op, errno } => write!(f, "{op}: {}", strerror(*errno)),
            Error::Exec { msg, .. } => f.write_str(msg),
            Error::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
