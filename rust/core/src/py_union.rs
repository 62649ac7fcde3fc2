//! Bindings for `dockyard-union`: overlay mounts, btrfs subvolumes, tree copies,
//! volume copy-up.
//! Every call releases the GIL. Errors: `MountError` for mount/unmount
//! failures, `StorageDriverError` for btrfs misuse, OSError (errno, message,
//! path) for the rest.

use dockyard_union as union;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use std::path::{Path, PathBuf};

pyo3::import_exception!(dockyard.errors, MountError);
pyo3::import_exception!(dockyard.errors, StorageDriverError);

fn to_py(e: union::Error) -> PyErr {
    match e {
        union::Error::Mount(m) => MountError::new_err(m),
        union::Error::Storage(m) => StorageDriverError::new_err(m),
        union::Error::Io { op, path, source } => {
            let text = source.to_string();
            let text = match text.rfind(" (os error ") {
                Some(i) => &text[..i],
                None => &text[..],
            };
            let msg = format!("{op}: {text}");
            match source.raw_os_error() {
                // OSError(errno, strerror, filename) picks the subclass (FileNotFoundError...).
                Some(errno) => PyOSError::new_err((errno, msg, path.to_string_lossy().into_owned())),
                None => PyOSError::new_err(format!("{msg}: {}", path.display())),
            }
        }
    }
}

/// Mount overlayfs on `target` (lowers uppermost first). With `cwd`, relative
/// paths resolve against it. `options`: extra overlay options (e.g. "index=off").
#[pyfunction]
#[pyo3(signature = (lowers, upper, work, target, cwd=None, options=None))]
fn mount_overlay(
    py: Python<'_>,
    lowers: Vec<PathBuf>,
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
    target: PathBuf,
    cwd: Option<PathBuf>,
    options: Option<String>,
) -> PyResult<()> {
    py.detach(|| {
        union::mount_overlay(
            &lowers,
            upper.as_deref(),
            work.as_deref(),
            &target,
            cwd.as_deref(),
            options.as_deref(),
        )
    })
    .map_err(to_py)
}

/// Mount a private tmpfs of at most `size` bytes on `target` (MountError
/// where mounting is not allowed, e.g. without CAP_SYS_ADMIN).
#[pyfunction]
fn mount_tmpfs(py: Python<'_>, target: PathBuf, size: u64) -> PyResult<()> {
    py.detach(|| union::mount_tmpfs(&target, size)).map_err(to_py)
}

/// Unmount `target` (lazily with `detach`). MountError if it isn't mounted.
#[pyfunction]
#[pyo3(signature = (target, detach=false))]
fn unmount(py: Python<'_>, target: PathBuf, detach: bool) -> PyResult<()> {
    py.detach(|| union::unmount(&target, detach)).map_err(to_py)
}

/// Copy the contents of the directory open at `src_fd` into the one open at
/// `dst_fd` (fds stay the caller's) as a Dockerfile COPY does: entries
/// already there are merged into (a directory) or replaced, every entry
/// owned by `owner` (else the source's; setuid, and setgid with group exec,
/// dropped from non-directories as a chown does), `chmod` bits if given,
/// times in whole seconds, only `security.capability` kept with
/// `capability`, sockets passed over; the destination's own metadata
/// untouched. Returns the entries made.
#[pyfunction]
#[pyo3(signature = (src_fd, dst_fd, src_name, dst_name, owner=None, chmod=None, capability=false))]
#[allow(clippy::too_many_arguments)]
fn copy_into(
    py: Python<'_>,
    src_fd: i32,
    dst_fd: i32,
    src_name: PathBuf,
    dst_name: PathBuf,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    capability: bool,
) -> PyResult<usize> {
    use std::os::fd::BorrowedFd;
    let policy = union::Policy {
        owner,
        chmod,
        xattrs: if capability { union::XattrRule::Capability } else { union::XattrRule::None },
        tar_times: true,
        merge: true,
        skip_sockets: true,
        keep_root_meta: true,
    };
    // SAFETY: the caller keeps both fds open for the call.
    let (s, d) = unsafe { (BorrowedFd::borrow_raw(src_fd), BorrowedFd::borrow_raw(dst_fd)) };
    py.detach(|| union::copy_into(s, d, &src_name, &dst_name, policy)).map_err(to_py)
}

/// Copy a tree exactly (owners, modes, xattrs, hardlinks, devices, sparse).
#[pyfunction]
fn copy_tree(py: Python<'_>, src: PathBuf, dst: PathBuf) -> PyResult<()> {
    py.detach(|| union::copy_tree(&src, &dst)).map_err(to_py)
}

/// Volume copy-up: copy the directory `path` of the container rootfs
/// `rootfs` (resolved beneath it, symlinks as if it were `/`) exactly into
/// the empty volume directory `dest`. Returns "missing", "file" (not a
/// directory), "skipped" (`dest` not empty) or "copied". Crash-safe through
/// the marker `dest/../.copyup-incomplete` (see `dockyard_union::copy_up`).
#[pyfunction]
fn copy_up(py: Python<'_>, rootfs: PathBuf, path: PathBuf, dest: PathBuf) -> PyResult<&'static str> {
    py.detach(|| union::copy_up(&rootfs, &path, &dest)).map(|r| r.as_str()).map_err(to_py)
}

/// Docker's name for the filesystem holding `path`.
#[pyfunction]
fn fs_type(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| union::fs_type(&path)).map_err(to_py)
}

/// The raw statfs magic of the filesystem holding `path`.
#[pyfunction]
fn fs_magic(py: Python<'_>, path: PathBuf) -> PyResult<u32> {
    py.detach(|| union::fs_magic(&path)).map_err(to_py)
}

/// Whether the filesystem of directory `path` reports d_type (overlay needs it).
#[pyfunction]
fn supports_d_type(py: Python<'_>, path: PathBuf) -> PyResult<bool> {
    py.detach(|| union::supports_d_type(&path)).map_err(to_py)
}

#[pyfunction]
fn btrfs_subvolume_create(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| union::subvolume_create(&path)).map_err(to_py)
}

#[pyfunction]
#[pyo3(signature = (src, dst, readonly=false))]
fn btrfs_subvolume_snapshot(py: Python<'_>, src: PathBuf, dst: PathBuf, readonly: bool) -> PyResult<()> {
    py.detach(|| union::subvolume_snapshot(&src, &dst, readonly)).map_err(to_py)
}

#[pyfunction]
fn btrfs_subvolume_delete(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| union::subvolume_delete(&path)).map_err(to_py)
}

#[pyfunction]
fn is_btrfs_subvolume(py: Python<'_>, path: PathBuf) -> PyResult<bool> {
    py.detach(|| union::is_btrfs_subvolume(Path::new(&path))).map_err(to_py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mount_overlay, m)?)?;
    m.add_function(wrap_pyfunction!(unmount, m)?)?;
    m.add_function(wrap_pyfunction!(mount_tmpfs, m)?)?;
    m.add_function(wrap_pyfunction!(copy_tree, m)?)?;
    m.add_function(wrap_pyfunction!(copy_into, m)?)?;
    m.add_function(wrap_pyfunction!(copy_up, m)?)?;
    m.add_function(wrap_pyfunction!(fs_type, m)?)?;
    m.add_function(wrap_pyfunction!(fs_magic, m)?)?;
    m.add_function(wrap_pyfunction!(supports_d_type, m)?)?;
    m.add_function(wrap_pyfunction!(btrfs_subvolume_create, m)?)?;
    m.add_function(wrap_pyfunction!(btrfs_subvolume_snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(btrfs_subvolume_delete, m)?)?;
    m.add_function(wrap_pyfunction!(is_btrfs_subvolume, m)?)?;
    Ok(())
}
