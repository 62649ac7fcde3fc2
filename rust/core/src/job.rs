//! Kernel work run on a thread of its own while the caller (holding the
//! GIL) does the rest of an operation: `Job::wait` or `Job::join` joins it.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Work on a thread of its own (`make_cgroup`, `sandbox_async`).
#[pyclass(frozen, module = "dockyard._core")]
pub struct Job(Mutex<Option<JoinHandle<PyResult<()>>>>);

impl Job {
    /// Run `work` on a new thread; its `Ok` is what `wait` answers True for
    /// (its error is not kept: the caller does the work again for it).
    pub fn spawn<E>(work: impl FnOnce() -> Result<(), E> + Send + 'static) -> Job {
        Job::spawn_py(move || work().map_err(|_| PyRuntimeError::new_err("the job failed")))
    }

    /// Run `work` on a new thread; `join` raises its error.
    pub fn spawn_py(work: impl FnOnce() -> PyResult<()> + Send + 'static) -> Job {
        Job(Mutex::new(Some(std::thread::spawn(work))))
    }

    fn take(&self) -> Option<JoinHandle<PyResult<()>>> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }
}

#[pymethods]
impl Job {
    /// Wait until it is done; whether it succeeded (the caller then does the
    /// work itself, and reports its error). Later calls answer False.
    fn wait(&self, py: Python<'_>) -> bool {
        let h = self.take();
        py.detach(|| h.is_some_and(|h| h.join().is_ok_and(|r| r.is_ok())))
    }

    /// Wait until it is done and raise its error, if any. Once only.
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let h = self.take().ok_or_else(|| PyRuntimeError::new_err("the job was joined already"))?;
        py.detach(|| h.join()).unwrap_or_else(|_| Err(PyRuntimeError::new_err("the job panicked")))
    }
}
