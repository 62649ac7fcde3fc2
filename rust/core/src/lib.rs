//! `dockyard._core`: the Rust half of Dockyard. This file only binds; the logic
//! lives in the plain crates `dockyard-archive` and `dockyard-union`, with their
//! own tests. Each `py_*.rs` binds one of them.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;

mod errors;
mod job;
mod py_archive;
mod py_union;
mod py_runtime;
mod py_network;
mod shim_pool;

use dockyard_archive::digest;

use errors::to_py;

/// `sha256:<hex>` of a file's contents. Releases the GIL.
#[pyfunction]
fn sha256_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| digest::of_file(&path)).map(|(d, _)| d).map_err(|e| to_py(e.into()))
}

/// `sha256:<hex>` of a bytes object. Releases the GIL for large inputs.
#[pyfunction]
fn sha256_bytes(py: Python<'_>, data: &Bound<'_, PyBytes>) -> String {
    let b = data.as_bytes();
    if b.len() < 1 << 16 {
        digest::of_bytes(b)
    } else {
        py.detach(|| digest::of_bytes(b))
    }
}

/// An incremental SHA-256, like hashlib's but returning Docker's digest form.
#[pyclass(module = "dockyard._core")]
struct Sha256 {
    inner: Option<sha2::Sha256>,
}

#[pymethods]
impl Sha256 {
    #[new]
    fn new() -> Self {
        use sha2::Digest;
        Self { inner: Some(sha2::Sha256::new()) }
    }

    fn update(&mut self, py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        use sha2::Digest;
        let h = self.inner.as_mut().ok_or_else(|| pyo3::exceptions::PyValueError::new_err("digest already finished"))?;
        let b = data.as_bytes();
        if b.len() < 1 << 16 {
            h.update(b);
        } else {
            py.detach(|| h.update(b));
        }
        Ok(())
    }

    /// Finish and return `sha256:<hex>`; the object can't be updated afterwards.
    fn digest(&mut self) -> PyResult<String> {
        let h = self.inner.take().ok_or_else(|| pyo3::exceptions::PyValueError::new_err("digest already finished"))?;
        Ok(digest::finish(h))
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sha256_file, m)?)?;
    m.add_function(wrap_pyfunction!(sha256_bytes, m)?)?;
    m.add_class::<Sha256>()?;
    m.add_class::<job::Job>()?;
    py_archive::register(m)?;
    py_union::register(m)?;
    py_runtime::register(m)?;
    py_network::register(m)?;
    Ok(())
}
