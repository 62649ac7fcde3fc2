//! Layer tarballs for Dockyard: SHA-256 digests, streaming extraction that can't
//! escape its target, layer creation, and whiteout conversion. No Python here.
//!
//! - [`extract`]: (gzip|zstd|plain) tar stream → directory, digest + diff ID
//!   in the same pass, whiteouts for overlay or naive (vfs/btrfs) layers.
//! - [`create`]: directory (or the difference of two) → tar, optionally
//!   compressed, with the same digests.
//! - [`fsops`]: the root-confined file-system primitives both use.

pub mod context;
pub mod create;
pub mod digest;
pub mod error;
pub mod extract;
pub mod fsops;
pub mod idmap;
pub mod pgzip;
pub mod pipeline;
pub mod tarsplit;

pub use error::{Error, Result};
pub use extract::Whiteouts;
pub use pipeline::Compression;

/// What extraction or creation reports about a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// `sha256:…` of the stream as stored (compressed form).
    pub digest: String,
    /// `sha256:…` of the uncompressed tar stream.
    pub diff_id: String,
    /// Bytes of the uncompressed tar stream.
    pub size: u64,
    /// Bytes of the stream as stored.
    pub compressed_size: u64,
    pub compression: Compression,
}
