//! Layer creation (stub; implemented below in this file later).
use crate::{Compression, LayerInfo, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct CreateOptions {
    pub compression: Compression,
    pub overlay_upper: bool,
    pub parent_root: Option<PathBuf>,
}

pub fn create_layer<W: Write + Send>(_root: &Path, _out: W, _opts: &CreateOptions) -> Result<LayerInfo> {
    Err(crate::Error::corrupt("not implemented"))
}
