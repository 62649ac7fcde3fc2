//! Kernel work run on a thread of its own while the caller (holding the
//! GIL) does the rest of an operation: `Job::wait` joins it.

use pyo3::prelude::*;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Work on a thread of its own (`make_cgroup`).
#[pyclass(frozen, module = "dockyard._core")]
pub struct Job(Mutex<Option<JoinHandle<bool>>>);

impl Job {
    /// Run `work` on a new thread; its `Ok` is what `wait` answers True for.
    pub fn spawn<E>(work: impl FnOnce() -> Result<(), E> + Send + 'static) -> Job {
        Job(Mutex::new(Some(std::thread::spawn(move || work().is_ok()))))
    }
}

#[pymethods]
impl Job {
    /// Wait until it is done; whether it succeeded (the caller then does the
    /// work itself, and reports its error). Later calls answer False.
    fn wait(&self, py: Python<'_>) -> bool {
        let h = self.0.lock().ok().and_then(|mut g| g.take());
        py.detach(|| h.is_some_and(|h| h.join().unwrap_or(false)))
    }
}
