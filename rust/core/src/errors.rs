//! One error type for the core, and its one mapping onto the Python classes in
//! `dockyard.errors` (so Python code can `except LayerCorrupt:` and the API can
//! map each class to an HTTP status in one table).

use pyo3::PyErr;

pyo3::import_exception!(dockyard.errors, DockyardError);
pyo3::import_exception!(dockyard.errors, LayerCorrupt);
pyo3::import_exception!(dockyard.errors, UnsafePath);

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt layer: {0}")]
    Corrupt(String),
    #[error("unsafe path in archive: {0}")]
    Unsafe(String),
}

pub fn to_py(e: CoreError) -> PyErr {
    match e {
        CoreError::Io(io) => PyErr::from(io),
        CoreError::Corrupt(m) => LayerCorrupt::new_err(m),
        CoreError::Unsafe(m) => UnsafePath::new_err(m),
    }
}
