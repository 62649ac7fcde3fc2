//! Safe, streaming extraction of a layer tarball into a directory.
//!
//! The `tar` crate is used only to *parse* entries; every file-system change
//! is made here relative to the target's root fd (see `fsops`). The work is
//! split over two threads: one reads, hashes (digest) and decompresses; the
//! calling thread hashes the tar stream (diff ID), parses it and writes files.
//!
//! Semantics follow Docker's archive package (`Unpack` for the overlay
//! driver, `UnpackLayer` for vfs/btrfs "naive" layers):
//! - names are cleaned; a relative name climbing above the root or a
//!   hardlink target outside it fails the whole layer (UnsafePath,
//!   "breakout"); a symlink may point anywhere, as in dockerd's chrooted
//!   untar: every path is resolved in the root (`..` stops at it);
//! - missing parent directories are made 0755;
//! - an existing path is replaced unless both it and the entry are
//!   directories (then metadata is merged);
//! - owner, then xattrs, then mode (so setuid/setgid survive), then times;
//!   directory times are set at the end, after their contents;
//! - whiteouts: see [`Whiteouts`].
//!
//! On any failure the target is emptied again (the caller passes a fresh
//! directory — or, in naive mode, a copy of the parent that it will discard).
//!
//! Here: the entry points and the two-thread driver. `meta` reads an entry's
//! header and PAX records; `extractor` holds the per-layer state and
//! dispatches entries by type to `entry` (directories, files, symlinks,
//! devices), `hardlink`, `sparse` (sparse file contents) and `whiteout`
//! (whiteouts and opaque markers).

mod entry;
mod extractor;
mod hardlink;
mod meta;
mod sparse;
mod whiteout;

use crate::error::{Ctx, Error, Result};
use crate::fsops::{self, Root};
use crate::pipeline;
use crate::tarsplit::Recorder;
use crate::LayerInfo;
use extractor::Extractor;
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

pub const WH_PREFIX: &[u8] = b".wh.";
pub const WH_META_PREFIX: &[u8] = b".wh..wh.";
pub const WH_OPAQUE: &[u8] = b".wh..wh..opq";

/// How whiteout entries are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// The target is an overlayfs upper dir: `.wh.x` → 0/0 char device `x`;
    /// `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory.
    Overlay,
    /// The target holds a copy of the parent layer (vfs, btrfs): `.wh.x`
    /// removes `x`; `.wh..wh..opq` removes what the directory held before
    /// this layer (entries this layer unpacked stay, wherever the marker is).
    Naive,
    /// Not a layer (`ADD` of a local archive, as Docker's `Untar`): `.wh.*`
    /// entries are ordinary files, the root entry is skipped.
    Plain,
}

impl Whiteouts {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "overlay" | "overlay2" | "overlayfs" => Some(Whiteouts::Overlay),
            "naive" | "vfs" | "btrfs" => Some(Whiteouts::Naive),
            "plain" | "none" => Some(Whiteouts::Plain),
            _ => None,
        }
    }
}

/// Extract the layer file at `src` into the existing directory `target`.
pub fn extract_file(src: &Path, target: &Path, whiteouts: Whiteouts, abort: &AtomicBool) -> Result<LayerInfo> {
    let f = File::open(src).ctx(|| format!("open layer {}", src.display()))?;
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
    extract(BufReader::with_capacity(1 << 20, f), target, whiteouts, abort)
}

/// Extract a (maybe compressed) tar stream into the existing directory
/// `target`. `abort` is polled; setting it makes this return `Aborted`.
pub fn extract<R: BufRead + Send>(src: R, target: &Path, whiteouts: Whiteouts, abort: &AtomicBool) -> Result<LayerInfo> {
    extract_inner(src, target, whiteouts, abort, false).map(|(info, _)| info)
}

/// Like [`extract`], and also returns the layer's tar-split record (see
/// [`crate::tarsplit`]), from which the exact tar stream can be rebuilt.
pub fn extract_with_split<R: BufRead + Send>(
    src: R,
    target: &Path,
    whiteouts: Whiteouts,
    abort: &AtomicBool,
) -> Result<(LayerInfo, Vec<u8>)> {
    extract_inner(src, target, whiteouts, abort, true).map(|(info, split)| (info, split.unwrap_or_default()))
}

/// [`extract_file`] with a tar-split record.
pub fn extract_file_with_split(src: &Path, target: &Path, whiteouts: Whiteouts, abort: &AtomicBool) -> Result<(LayerInfo, Vec<u8>)> {
    let f = File::open(src).ctx(|| format!("open layer {}", src.display()))?;
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
    extract_with_split(BufReader::with_capacity(1 << 20, f), target, whiteouts, abort)
}

fn extract_inner<R: BufRead + Send>(
    src: R,
    target: &Path,
    whiteouts: Whiteouts,
    abort: &AtomicBool,
    record_split: bool,
) -> Result<(LayerInfo, Option<Vec<u8>>)> {
    fsops::raise_nofile_limit();
    let mut root = Root::open(target)?;
    let (tx, pool_rx, reader) = pipeline::channel(true);
    let broken = reader.broken_flag.clone();
    let result = std::thread::scope(|s| {
        let dec = std::thread::Builder::new()
            .name("dockyard-inflate".into())
            .spawn_scoped(s, move || pipeline::decompress_into(src, tx, pool_rx, abort))
            .map_err(|e| Error::io("spawn decompression thread", e))?;
        let mut ex = Extractor::new(&mut root, whiteouts, abort);
        if record_split {
            ex.split = Some(Rc::new(RefCell::new(Recorder::new())));
        }
        let res = ex.run(reader);
        let split = ex.split.take();
        if res.is_err() {
            // Stop the reading side promptly (a streaming source polls this).
            abort.store(true, Ordering::Relaxed);
        }
        let src_res = dec.join().unwrap_or_else(|_| Err(Error::corrupt("decompression thread panicked")));
        match (res, src_res) {
            (Ok((size, diff_id)), Ok(sum)) => {
                let split = match split {
                    Some(rec) => Some(
                        Rc::try_unwrap(rec)
                            .map_err(|_| Error::corrupt("tar-split recorder still shared"))?
                            .into_inner()
                            .finish()?,
                    ),
                    None => None,
                };
                Ok((
                    LayerInfo {
                        digest: sum.digest,
                        diff_id,
                        size,
                        compressed_size: sum.compressed_size,
                        compression: sum.compression,
                    },
                    split,
                ))
            }
            // A tar error caused by the decompressor going away: its own error says why.
            (Err(ex), Err(de)) => {
                if broken.load(Ordering::Relaxed) && !is_stopped(&de) {
                    Err(de)
                } else {
                    Err(ex)
                }
            }
            (Err(ex), Ok(_)) => Err(ex),
            (Ok(_), Err(de)) => Err(de),
        }
    });
    if std::env::var_os("DOCKYARD_ARCHIVE_TRACE").is_some() {
        eprintln!(
            "archive: decompressor waited {} ms on a full queue, extractor {} ms on an empty one",
            pipeline::WAIT_SEND.swap(0, Ordering::Relaxed) / 1000,
            pipeline::WAIT_RECV.swap(0, Ordering::Relaxed) / 1000
        );
    }
    if result.is_err() {
        // Leave no partial layer behind.
        let _ = fsops::empty_dir(root.fd());
    }
    result
}

fn is_stopped(e: &Error) -> bool {
    matches!(e, Error::Corrupt(m) if m == "extraction stopped")
}

fn tar_err(e: std::io::Error) -> Error {
    Error::corrupt(format!("invalid tar stream: {e}"))
}

#[cfg(test)]
mod tests;
