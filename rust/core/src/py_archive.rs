//! Bindings for `dockyard-archive`: layer extraction and creation. Thin: the
//! logic (and its tests) live in the plain crate. Every call releases the GIL.

use crate::errors::{to_py, CoreError};
use dockyard_archive as da;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::io::{self, BufRead, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What extraction/creation reports about a layer.
#[pyclass(module = "dockyard._core", name = "LayerInfo", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct LayerInfo {
    /// sha256 of the stream as given (compressed form).
    #[pyo3(get)]
    digest: String,
    /// sha256 of the uncompressed tar.
    #[pyo3(get)]
    diff_id: String,
    /// Bytes of the uncompressed tar.
    #[pyo3(get)]
    size: u64,
    #[pyo3(get)]
    compressed_size: u64,
    /// "none", "gzip" or "zstd".
    #[pyo3(get)]
    compression: String,
}

#[pymethods]
impl LayerInfo {
    fn __repr__(&self) -> String {
        format!(
            "LayerInfo(digest={:?}, diff_id={:?}, size={}, compressed_size={}, compression={:?})",
            self.digest, self.diff_id, self.size, self.compressed_size, self.compression
        )
    }
}

impl From<da::LayerInfo> for LayerInfo {
    fn from(i: da::LayerInfo) -> Self {
        LayerInfo {
            digest: i.digest,
            diff_id: i.diff_id,
            size: i.size,
            compressed_size: i.compressed_size,
            compression: i.compression.as_str().to_string(),
        }
    }
}

fn err(e: da::Error) -> PyErr {
    match e {
        da::Error::Io { context, source } => match source.raw_os_error() {
            Some(n) => PyOSError::new_err((n, format!("{context}: {}", io::Error::from_raw_os_error(n)))),
            None => to_py(CoreError::Io(io::Error::new(source.kind(), format!("{context}: {source}")))),
        },
        da::Error::Corrupt(m) => to_py(CoreError::Corrupt(m)),
        da::Error::Unsafe(m) => to_py(CoreError::Unsafe(m)),
        da::Error::Aborted => to_py(CoreError::Corrupt("layer extraction aborted".into())),
    }
}

fn whiteouts(s: &str) -> PyResult<da::Whiteouts> {
    da::Whiteouts::parse(s).ok_or_else(|| PyValueError::new_err(format!("whiteouts must be 'overlay', 'naive' or 'plain', not {s:?}")))
}

/// Extract a (maybe compressed) layer tarball into `target` (an existing,
/// fresh dir). On failure the target is emptied again.
/// With `split`, also write the layer's tar-split record to that path.
#[pyfunction]
#[pyo3(signature = (src, target, whiteouts = "overlay", split = None))]
fn extract_layer_file(py: Python<'_>, src: PathBuf, target: PathBuf, whiteouts: &str, split: Option<PathBuf>) -> PyResult<LayerInfo> {
    let wh = self::whiteouts(whiteouts)?;
    let abort = AtomicBool::new(false);
    py.detach(|| match &split {
        None => da::extract::extract_file(&src, &target, wh, &abort),
        Some(sp) => {
            let (info, rec) = da::extract::extract_file_with_split(&src, &target, wh, &abort)?;
            write_split(sp, &rec)?;
            Ok(info)
        }
    })
    .map(Into::into)
    .map_err(err)
}

/// Write the tar-split record of the uncompressed layer tar `src`, whose
/// files are already where its names say beneath the layer's root (a layer
/// filled in place): what extraction would have recorded, nothing written.
#[pyfunction]
fn record_layer_split(py: Python<'_>, src: PathBuf, split: PathBuf) -> PyResult<()> {
    py.detach(|| write_split(&split, &da::tarsplit::record_file(&src)?)).map_err(err)
}

/// Index a build context tar (plain, gzip or zstd) in one pass: entries as
/// (key, typeflag, mode, size, linkname, data offset, tarsum-v1 sum), and
/// whether a compressed `src` was written out plain to `plain_out`.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn index_build_context(py: Python<'_>, src: PathBuf, plain_out: PathBuf) -> PyResult<(Vec<(Vec<u8>, u8, u32, u64, Vec<u8>, u64, String)>, bool)> {
    py.detach(|| da::context::index(&src, &plain_out))
        .map(|(l, w)| (l.into_iter().map(|e| (e.key, e.typeflag, e.mode, e.size, e.link, e.offset, e.sum)).collect(), w))
        .map_err(err)
}

/// Write a tar-split record under a temporary name, then rename it in place.
fn write_split(path: &std::path::Path, data: &[u8]) -> da::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| da::Error::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| da::Error::io(format!("rename {}", path.display()), e))
}

/// Bytes of regular-file contents recorded in a tar-split (Docker's layer size).
#[pyfunction]
fn layer_content_size(py: Python<'_>, split: PathBuf) -> PyResult<u64> {
    py.detach(|| -> da::Result<u64> {
        let rec = std::fs::read(&split).map_err(|e| da::Error::io(format!("read {}", split.display()), e))?;
        da::tarsplit::content_size(&rec)
    })
    .map_err(err)
}

/// Rebuild the exact tar stream of a layer from its tar-split record and its
/// extracted files, into a path or an fd (not closed), optionally compressed
/// (push). `diff_id` is the sha256 of the tar, `digest` that of the bytes written.
#[pyfunction]
#[pyo3(signature = (split, root, dest, compression = "none", level = None))]
fn assemble_layer(py: Python<'_>, split: PathBuf, root: PathBuf, dest: Dest, compression: &str, level: Option<u32>) -> PyResult<LayerInfo> {
    let compression = da::Compression::parse(compression)
        .ok_or_else(|| PyValueError::new_err(format!("compression must be 'none', 'gzip' or 'zstd', not {compression:?}")))?;
    py.detach(|| -> da::Result<da::LayerInfo> {
        let rec = std::fs::read(&split).map_err(|e| da::Error::io(format!("read {}", split.display()), e))?;
        let file = open_dest(&dest)?;
        if compression != da::Compression::None {
            let ((diff_id, size), digest, csize) =
                da::create::compressed(file, compression, level, |w| da::tarsplit::assemble(&rec, &root, w))?;
            return Ok(da::LayerInfo { digest, diff_id, size, compressed_size: csize, compression });
        }
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let (diff_id, size) = da::tarsplit::assemble(&rec, &root, &mut w)?;
        std::io::Write::flush(&mut w).map_err(|e| da::Error::io("write layer tar", e))?;
        Ok(da::LayerInfo { digest: diff_id.clone(), diff_id, size, compressed_size: size, compression: da::Compression::None })
    })
    .map(Into::into)
    .map_err(err)
}

// ---------------------------------------------------------------------------
// Streaming unpacker.

/// A chunk handed over from Python without copying: the bytes object is kept
/// alive (its buffer is immutable) until the worker has consumed it.
struct Chunk {
    _owner: Option<Py<PyBytes>>,
    owned: Vec<u8>,
    ptr: *const u8,
    len: usize,
}
// SAFETY: the pointer targets the immutable buffer of a `bytes` object that
// `_owner` keeps alive (or `owned`'s heap buffer, which moves with it).
unsafe impl Send for Chunk {}

impl Chunk {
    fn as_slice(&self) -> &[u8] {
        if self._owner.is_some() {
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        } else {
            &self.owned
        }
    }
}

/// The worker's byte source: chunks from the channel. Polls `abort`, so an
/// extraction that failed (or was aborted) stops waiting for more input.
struct ChanSource {
    rx: Receiver<Chunk>,
    cur: Option<Chunk>,
    pos: usize,
    abort: Arc<AtomicBool>,
    /// Where consumed chunks go to be kept (see `Keeper`).
    keep: Option<SyncSender<Chunk>>,
}

impl Read for ChanSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChanSource {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        loop {
            if let Some(c) = &self.cur {
                if self.pos < c.len_() {
                    break;
                }
            }
            if let (Some(k), Some(c)) = (&self.keep, self.cur.take()) {
                if k.send(c).is_err() {
                    self.keep = None; // the keeper gave up (a write failed)
                }
            }
            if self.abort.load(Ordering::Relaxed) {
                return Err(io::Error::other(da::pipeline::ABORTED_MSG));
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(c) => {
                    self.cur = Some(c);
                    self.pos = 0;
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    if self.abort.load(Ordering::Relaxed) {
                        return Err(io::Error::other(da::pipeline::ABORTED_MSG));
                    }
                    return Ok(&[]);
                }
            }
        }
        let c = self.cur.as_ref().map(|c| c.as_slice()).unwrap_or(&[]);
        Ok(&c[self.pos..])
    }
    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}

impl Chunk {
    fn len_(&self) -> usize {
        if self._owner.is_some() {
            self.len
        } else {
            self.owned.len()
        }
    }
}

/// Keeps a copy of the compressed stream as it passes: the chunks the
/// decompressor has read go to a thread of their own that appends them to a
/// file, so the copy costs the pipeline neither a copy of the bytes nor a
/// wait on the disk. A cache (the blob as pulled, for a later push): never
/// synced, removed on any failure, the caller renames it once the digest
/// checks out. Writeback is started as it goes, so that the layer's syncfs
/// finds little of it still dirty.
struct Keeper {
    path: PathBuf,
    thread: JoinHandle<bool>,
}

/// Bytes between two writeback kicks (sync_file_range, asynchronous).
const KEEP_KICK: u64 = 8 << 20;

impl Keeper {
    fn start(path: PathBuf) -> io::Result<(Keeper, SyncSender<Chunk>)> {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path)?;
        let (tx, rx) = sync_channel::<Chunk>(64);
        let thread = std::thread::Builder::new().name("dockyard-keep".into()).spawn(move || {
            let (mut done, mut kicked) = (0u64, 0u64);
            for c in rx.iter() {
                if file.write_all(c.as_slice()).is_err() {
                    return false; // dropping `rx` tells the source to stop sending
                }
                done += c.len_() as u64;
                if done - kicked >= KEEP_KICK {
                    // SAFETY: a plain syscall on an fd we own.
                    unsafe { libc::sync_file_range(file.as_raw_fd(), kicked as i64, (done - kicked) as i64, libc::SYNC_FILE_RANGE_WRITE) };
                    kicked = done;
                }
            }
            true
        })?;
        Ok((Keeper { path, thread }, tx))
    }

    /// Wait for the writes (the source is gone, so no more come); keep the
    /// file only if extraction and every write succeeded.
    fn settle(self, ok: bool) {
        let wrote = self.thread.join().unwrap_or(false);
        if !(ok && wrote) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Streaming extraction: feed chunks as they arrive (HTTP body of a pull).
/// A background thread decompresses, another parses and writes.
#[pyclass(module = "dockyard._core")]
struct LayerUnpacker {
    tx: Option<SyncSender<Chunk>>,
    worker: Option<JoinHandle<da::Result<da::LayerInfo>>>,
    abort: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    outcome: Option<Result<LayerInfo, (u8, String)>>,
}

impl LayerUnpacker {
    /// Join the worker (GIL released) and remember its outcome.
    fn settle(&mut self, py: Python<'_>) {
        self.tx = None; // EOF (or wake-up) for the source
        if let Some(w) = self.worker.take() {
            let r = py.detach(|| w.join());
            self.outcome = Some(match r {
                Ok(Ok(info)) => Ok(info.into()),
                Ok(Err(e)) => Err(stash(e)),
                Err(_) => Err((1, "layer extraction thread panicked".into())),
            });
        }
    }

    fn outcome_err(&self) -> PyErr {
        match &self.outcome {
            Some(Err((k, m))) => unstash(*k, m),
            _ => to_py(CoreError::Corrupt("layer extraction failed".into())),
        }
    }
}

/// Errors are kept as (kind, message) so `finish()` can raise them again.
fn stash(e: da::Error) -> (u8, String) {
    match e {
        da::Error::Corrupt(m) => (1, m),
        da::Error::Unsafe(m) => (2, m),
        da::Error::Aborted => (3, "layer extraction aborted".into()),
        io @ da::Error::Io { .. } => (4 + io.raw_os_error().unwrap_or(0).clamp(0, 250) as u8, io.to_string()),
    }
}

fn unstash(k: u8, m: &str) -> PyErr {
    match k {
        1 | 3 => to_py(CoreError::Corrupt(m.to_string())),
        2 => to_py(CoreError::Unsafe(m.to_string())),
        k if k > 4 => PyOSError::new_err(((k - 4) as i32, m.to_string())),
        _ => PyOSError::new_err(m.to_string()),
    }
}

#[pymethods]
impl LayerUnpacker {
    #[new]
    #[pyo3(signature = (target, whiteouts = "overlay", split = None, keep = None))]
    fn new(target: PathBuf, whiteouts: &str, split: Option<PathBuf>, keep: Option<PathBuf>) -> PyResult<Self> {
        let wh = self::whiteouts(whiteouts)?;
        if !target.is_dir() {
            return Err(PyOSError::new_err((libc_enotdir(&target), format!("target is not a directory: {}", target.display()))));
        }
        let (tx, rx) = sync_channel::<Chunk>(16);
        let abort = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        let (a2, f2) = (abort.clone(), failed.clone());
        let (keeper, keep_tx) = match keep {
            // Not being able to keep a copy is no reason to fail the layer.
            Some(p) => Keeper::start(p).map(|(k, tx)| (Some(k), Some(tx))).unwrap_or((None, None)),
            None => (None, None),
        };
        let worker = std::thread::Builder::new()
            .name("dockyard-unpack".into())
            .spawn(move || {
                // The source (and its sender to the keeper) is dropped when
                // extraction returns, which ends the keeper's input.
                let src = ChanSource { rx, cur: None, pos: 0, abort: a2.clone(), keep: keep_tx };
                let r = match &split {
                    None => da::extract::extract(src, &target, wh, &a2),
                    Some(sp) => da::extract::extract_with_split(src, &target, wh, &a2)
                        .and_then(|(info, rec)| write_split(sp, &rec).map(|_| info)),
                };
                if r.is_err() {
                    f2.store(true, Ordering::Release);
                }
                if let Some(k) = keeper {
                    k.settle(r.is_ok());
                }
                r
            })
            .map_err(PyErr::from)?;
        Ok(LayerUnpacker { tx: Some(tx), worker: Some(worker), abort, failed, outcome: None })
    }

    /// Feed the next chunk of the (compressed) layer. Blocks (without the
    /// GIL) while the extractor is behind; raises as soon as it has failed.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.failed.load(Ordering::Acquire) {
            self.settle(py);
            return Err(self.outcome_err());
        }
        let Some(tx) = self.tx.clone() else {
            return Err(PyValueError::new_err("LayerUnpacker is finished"));
        };
        let chunk = if let Ok(b) = data.cast::<PyBytes>() {
            let s = b.as_bytes();
            if s.is_empty() {
                return Ok(());
            }
            Chunk { ptr: s.as_ptr(), len: s.len(), _owner: Some(b.clone().unbind()), owned: Vec::new() }
        } else {
            let buf: pyo3::buffer::PyBuffer<u8> = pyo3::buffer::PyBuffer::get(data)?;
            let v = buf.to_vec(py)?;
            if v.is_empty() {
                return Ok(());
            }
            Chunk { _owner: None, ptr: std::ptr::null(), len: 0, owned: v }
        };
        let sent = py.detach(move || tx.send(chunk).is_ok());
        if !sent || self.failed.load(Ordering::Acquire) {
            self.settle(py);
            return Err(self.outcome_err());
        }
        Ok(())
    }

    /// Signal the end of the stream and wait for extraction to end; raises
    /// LayerCorrupt on a bad or truncated stream (the target is then empty).
    fn finish(&mut self, py: Python<'_>) -> PyResult<LayerInfo> {
        self.settle(py);
        match &self.outcome {
            Some(Ok(info)) => Ok(info.clone()),
            _ => Err(self.outcome_err()),
        }
    }

    /// Stop and remove what was extracted. No-op after a successful finish().
    fn abort(&mut self, py: Python<'_>) {
        if self.worker.is_some() {
            self.abort.store(true, Ordering::Release);
            self.settle(py);
        }
    }
}

impl Drop for LayerUnpacker {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            self.abort.store(true, Ordering::Release);
            self.tx = None;
            let _ = w.join();
        }
    }
}

fn libc_enotdir(p: &std::path::Path) -> i32 {
    if p.exists() {
        20 // ENOTDIR
    } else {
        2 // ENOENT
    }
}

// ---------------------------------------------------------------------------
// Creation.

/// `dest` of create_layer: a path, or an fd the caller keeps.
enum Dest {
    Fd(i32),
    Path(PathBuf),
}

impl<'py> FromPyObject<'_, 'py> for Dest {
    type Error = PyErr;
    fn extract(ob: pyo3::Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(fd) = ob.extract::<i32>() {
            return Ok(Dest::Fd(fd));
        }
        Ok(Dest::Path(ob.extract::<PathBuf>()?))
    }
}

/// A writable file for `dest`: a dup of the caller's fd, or a new file.
fn open_dest(dest: &Dest) -> da::Result<std::fs::File> {
    Ok(match dest {
        Dest::Fd(fd) => {
            if *fd < 0 {
                return Err(da::Error::io("dest fd", io::Error::from_raw_os_error(9)));
            }
            // SAFETY: borrowed only for the dup; the caller keeps its fd.
            let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
            std::fs::File::from(b.try_clone_to_owned().map_err(|e| da::Error::io("dup dest fd", e))?)
        }
        Dest::Path(p) => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
            .map_err(|e| da::Error::io(format!("create {}", p.display()), e))?,
    })
}

/// Write a layer tar of `root` to a path or an open fd (not closed).
#[pyfunction]
#[pyo3(signature = (root, dest, compression = "none", overlay_upper = false, parent_root = None, id_map = None))]
fn create_layer(
    py: Python<'_>,
    root: PathBuf,
    dest: Dest,
    compression: &str,
    overlay_upper: bool,
    parent_root: Option<PathBuf>,
    id_map: Option<IdRanges>,
) -> PyResult<LayerInfo> {
    let compression = da::Compression::parse(compression)
        .ok_or_else(|| PyValueError::new_err(format!("compression must be 'none', 'gzip' or 'zstd', not {compression:?}")))?;
    let id_map = id_map.map(|(uids, gids)| da::idmap::IdMap { uids, gids });
    let opts = da::create::CreateOptions { compression, overlay_upper, parent_root, id_map };
    py.detach(|| -> da::Result<da::LayerInfo> {
        let file = open_dest(&dest)?;
        da::create::create_layer(&root, file, &opts)
    })
    .map(Into::into)
    .map_err(err)
}

/// (uid ranges, gid ranges), each (container ID, host ID, size).
type IdRanges = (Vec<(u32, u32, u32)>, Vec<(u32, u32, u32)>);

/// --userns-remap: shift the owners of everything under `root` from
/// container IDs to host IDs (a layer just unpacked).
#[pyfunction]
fn shift_ids(py: Python<'_>, root: PathBuf, id_map: IdRanges) -> PyResult<()> {
    let map = da::idmap::IdMap { uids: id_map.0, gids: id_map.1 };
    py.detach(|| da::idmap::shift_tree(&root, &map)).map_err(err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(shift_ids, m)?)?;
    m.add_class::<LayerInfo>()?;
    m.add_class::<LayerUnpacker>()?;
    m.add_function(wrap_pyfunction!(extract_layer_file, m)?)?;
    m.add_function(wrap_pyfunction!(record_layer_split, m)?)?;
    m.add_function(wrap_pyfunction!(index_build_context, m)?)?;
    m.add_function(wrap_pyfunction!(create_layer, m)?)?;
    m.add_function(wrap_pyfunction!(assemble_layer, m)?)?;
    m.add_function(wrap_pyfunction!(layer_content_size, m)?)?;
    Ok(())
}
