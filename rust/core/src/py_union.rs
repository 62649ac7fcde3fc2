//! Bindings for `dockyard-union`: overlay mounts, btrfs subvolumes, tree copies.

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
