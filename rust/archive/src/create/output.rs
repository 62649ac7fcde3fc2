//! The output side of layer creation: tar bytes → diff ID hash → (compressor
//! thread) → digest → out, in big chunks so neither side waits on small
//! writes.

use crate::error::{Error, Result};
use crate::Compression;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver};

pub(super) const OUT_CHUNK: usize = 1 << 20;

/// Counts and hashes what passes through.
struct HashW<W: Write> {
    inner: W,
    h: Sha256,
    n: u64,
}

impl<W: Write> Write for HashW<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.h.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The tar byte stream: buffered, hashed (diff ID), handed on in big chunks.
pub(super) struct TarSink<'a> {
    pub(super) buf: Vec<u8>,
    pub(super) h: Sha256,
    pub(super) n: u64,
    pub(super) next: &'a mut dyn FnMut(Vec<u8>) -> io::Result<()>,
}

impl TarSink<'_> {
    pub(super) fn push(&mut self, data: &[u8]) -> io::Result<()> {
        let mut data = data;
        while !data.is_empty() {
            let room = OUT_CHUNK - self.buf.len();
            let k = room.min(data.len());
            self.buf.extend_from_slice(&data[..k]);
            data = &data[k..];
            if self.buf.len() == OUT_CHUNK {
                self.ship()?;
            }
        }
        Ok(())
    }
    pub(super) fn ship(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_CHUNK));
        self.h.update(&b);
        self.n += b.len() as u64;
        (self.next)(b)
    }
}

/// `level`: gzip 0-9 (default 6), zstd 1-22 (default 3).
pub(super) fn compress_thread<W: Write>(rx: Receiver<Vec<u8>>, out: W, c: Compression, level: Option<u32>) -> Result<(String, u64)> {
    let hw = HashW { inner: io::BufWriter::with_capacity(OUT_CHUNK, out), h: Sha256::new(), n: 0 };
    let werr = |e: io::Error| Error::io("write layer", e);
    let hw = match c {
        Compression::None => {
            let mut hw = hw;
            for b in rx {
                hw.write_all(&b).map_err(werr)?;
            }
            hw
        }
        Compression::Gzip => {
            let lvl = level.map(|l| flate2::Compression::new(l.min(9))).unwrap_or_default();
            // Every core: compression is most of a push's work.
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut hw = hw;
            crate::pgzip::gzip_parallel(rx, &mut hw, lvl, threads).map_err(werr)?;
            hw
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(hw, level.map(|l| l.clamp(1, 22) as i32).unwrap_or(3)).map_err(werr)?;
            for b in rx {
                enc.write_all(&b).map_err(werr)?;
            }
            enc.finish().map_err(werr)?
        }
    };
    let HashW { mut inner, h, n } = hw;
    inner.flush().map_err(werr)?;
    Ok((crate::digest::finish(h), n))
}

/// A writer that ships full chunks to the compression thread.
struct ChunkTx {
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    stopped: bool, // a send failed: the compressor ended (with its own error)
}

impl ChunkTx {
    fn ship(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_CHUNK));
        let sent = match &self.tx {
            Some(tx) => tx.send(b).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        self.stopped = true;
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "compressor stopped"))
    }
}

impl Write for ChunkTx {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(OUT_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == OUT_CHUNK {
            self.ship()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.ship()
    }
}

/// Run `produce` (which writes an uncompressed stream) with its output
/// compressed on a second thread into `out`. Returns what `produce` returned,
/// then the digest and length of the compressed bytes written to `out`.
pub fn compressed<W, T, F>(out: W, c: Compression, level: Option<u32>, produce: F) -> Result<(T, String, u64)>
where
    W: Write + Send,
    F: FnOnce(&mut dyn Write) -> Result<T>,
{
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let th = std::thread::Builder::new()
            .name("dockyard-compress".into())
            .spawn_scoped(s, move || compress_thread(rx, out, c, level))
            .map_err(|e| Error::io("spawn compression thread", e))?;
        let mut w = ChunkTx { buf: Vec::with_capacity(OUT_CHUNK), tx: Some(tx), stopped: false };
        let res = produce(&mut w).and_then(|t| w.ship().map(|_| t).map_err(|e| Error::io("write layer", e)));
        let stopped = w.stopped;
        w.tx = None;
        let comp = th.join().unwrap_or_else(|_| Err(Error::corrupt("compression thread panicked")));
        // The compressor's own error (the disk is full) when it stopped first;
        // otherwise a producer error wins over the compressor's "broken pipe".
        if stopped {
            if let Err(e) = comp {
                return Err(e);
            }
        }
        let t = res?;
        let (digest, n) = comp?;
        Ok((t, digest, n))
    })
}
