//! Layer creation: a directory (or the difference between two) → a tar
//! stream, optionally gzip/zstd-compressed, with its digest and diff ID.
//!
//! The output follows what Docker's archive package writes (Go's
//! `archive/tar` in PAX format): entries in lexical walk order, no root
//! entry, directory names ending in `/`, plain ustar headers with PAX
//! records only when needed (long or non-ASCII names, big ids/sizes,
//! `SCHILY.xattr.*`), mtimes truncated to seconds, no atime/ctime, hardlinks
//! by (dev, inode) pointing at the first name written, sockets skipped, two
//! zero blocks at the end. Unlike Docker, user/group names are left empty
//! (no NSS lookups) and all xattrs except `security.selinux` are kept.
//!
//! `overlay_upper`: 0/0 character devices become `.wh.<name>` (empty
//! regular file, mode 0600, like moby's overlay converter), directories with
//! `trusted.overlay.opaque=y` get a `.wh..wh..opq` entry right after them,
//! and overlayfs' own `trusted.overlay.*` xattrs are not written (escaped
//! `trusted.overlay.overlay.*` ones are written unescaped).
//!
//! `parent_root`: only the changes from the parent tree to `root` (Docker's
//! naive diff for vfs/btrfs): added entries, entries whose type, mode,
//! owner, device, symlink target or — for non-directories — size/mtime
//! differ, the directories containing changes, and `.wh.<name>` for deleted
//! names (mode 0, owner 0:0, the parent directory's mtime).
//!
//! Here: the options and [`create_layer`]. `output` carries the tar bytes
//! through the diff ID hash and the compressor thread; `header` formats tar
//! headers as Go does; `walk` visits the tree (diffing it against the
//! parent's) and `entries` writes each entry's header and contents, with
//! `xattrs` reading (and for overlay translating) extended attributes.

mod entries;
mod header;
mod output;
mod walk;
mod xattrs;

pub use output::compressed;

use crate::error::{Ctx, Error, Result};
use crate::fsops;
use crate::{Compression, LayerInfo};
use output::{compress_thread, TarSink, OUT_CHUNK};
use rustix::fs::{self as rfs, Mode, OFlags};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use walk::Walker;

pub struct CreateOptions {
    pub compression: Compression,
    pub overlay_upper: bool,
    pub parent_root: Option<PathBuf>,
    /// --userns-remap: headers name the container's IDs of the host's owners.
    pub id_map: Option<crate::idmap::IdMap>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions { compression: Compression::None, overlay_upper: false, parent_root: None, id_map: None }
    }
}

/// Write a layer tar of `root` into `out` (which is not closed or synced).
pub fn create_layer<W: Write + Send>(root: &Path, out: W, opts: &CreateOptions) -> Result<LayerInfo> {
    fsops::raise_nofile_limit();
    let open_dir = |p: &Path| {
        rfs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ctx(|| format!("open {}", p.display()))
    };
    let rootfd = open_dir(root)?;
    let parentfd = match &opts.parent_root {
        Some(p) => Some(open_dir(p)?),
        None => None,
    };
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let c = opts.compression;
        let th = std::thread::Builder::new()
            .name("dockyard-compress".into())
            .spawn_scoped(s, move || compress_thread(rx, out, c, None))
            .map_err(|e| Error::io("spawn compression thread", e))?;
        let stopped = std::cell::Cell::new(false);
        let stopped_ref = &stopped;
        let mut send = move |b: Vec<u8>| {
            tx.send(b).map_err(|_| {
                stopped_ref.set(true);
                io::Error::new(io::ErrorKind::BrokenPipe, "compressor stopped")
            })
        };
        let mut sink = TarSink { buf: Vec::with_capacity(OUT_CHUNK), h: Sha256::new(), n: 0, next: &mut send };
        let res = (|| -> Result<()> {
            let mut w = Walker {
                sink: &mut sink,
                overlay_upper: opts.overlay_upper,
                id_map: opts.id_map.as_ref(),
                seen: HashMap::new(),
                pending: Vec::new(),
                buf: vec![0u8; OUT_CHUNK],
            };
            w.walk(rootfd.as_fd(), parentfd.as_ref().map(|f| f.as_fd()), b"")?;
            // End of archive: two zero blocks (Go's tar.Writer.Close).
            w.sink.push(&[0u8; 1024]).map_err(|e| Error::io("write layer", e))?;
            w.sink.ship().map_err(|e| Error::io("write layer", e))?;
            Ok(())
        })();
        let (diff_id, size) = (crate::digest::finish(std::mem::take(&mut sink.h)), sink.n);
        drop(sink);
        drop(send);
        let comp = th.join().unwrap_or_else(|_| Err(Error::corrupt("compression thread panicked")));
        // The compressor's own error (the disk is full) when it stopped first;
        // otherwise a walker error wins over the compressor's "broken pipe".
        if stopped.get() {
            if let Err(e) = comp {
                return Err(e);
            }
        }
        res?;
        let (digest, csize) = comp?;
        Ok(LayerInfo { digest, diff_id, size, compressed_size: csize, compression: opts.compression })
    })
}
