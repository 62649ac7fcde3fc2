//! Layer tarballs for Dockyard: SHA-256 digests, streaming extraction that can't
//! escape its target, layer creation, and whiteout conversion. No Python here.

pub mod digest;
