//! The read side of extraction: detect the compression from magic bytes,
//! hash the compressed bytes (digest), decompress, and hand the tar stream
//! to the extracting thread in large chunks over a bounded channel. The
//! consumer hashes the tar bytes (diff ID) as it takes chunks, so
//! decompression and file writes run on different cores.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

/// Size of the chunks handed from the decompressor to the tar parser.
pub const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads.
pub const DEPTH: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" | "" | "uncompressed" => Some(Compression::None),
            "gzip" | "gz" => Some(Compression::Gzip),
            "zstd" | "zst" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Detect from the first bytes (up to 6 needed).
pub fn detect(head: &[u8]) -> std::result::Result<Compression, String> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Compression::Gzip);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(Compression::Zstd);
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Err("xz-compressed layers are not supported".into());
    }
    if head.starts_with(b"BZh") {
        return Err("bzip2-compressed layers are not supported".into());
    }
    Ok(Compression::None)
}

/// A `BufRead` that hashes and counts what its consumer consumes, and
/// remembers whether a failure came from the source itself (an I/O error,
/// reported as OSError) rather than from the decoder (corrupt data).
struct HashingBuf<R> {
    inner: R,
    prefix: Vec<u8>,
    prefix_pos: usize,
    hasher: Sha256,
    count: u64,
    source_error: Option<io::Error>,
    stage: Vec<u8>,
}

const STAGE: usize = 256 << 10;

impl<R: BufRead> HashingBuf<R> {
    fn remember(&mut self, e: io::Error) -> io::Error {
        let k = e.kind();
        let msg = e.to_string();
        self.source_error = Some(e);
        io::Error::new(k, msg)
    }
}

impl<R: BufRead> Read for HashingBuf<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for HashingBuf<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.prefix_pos < self.prefix.len() {
            return Ok(&self.prefix[self.prefix_pos..]);
        }
        loop {
            match self.inner.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.remember(e)),
            }
        }
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        if self.prefix_pos < self.prefix.len() {
            let n = amt.min(self.prefix.len() - self.prefix_pos);
            self.stage.extend_from_slice(&self.prefix[self.prefix_pos..self.prefix_pos + n]);
            self.prefix_pos += n;
            self.count += n as u64;
            debug_assert_eq!(n, amt);
            return;
        }
        if let Ok(b) = self.inner.fill_buf() {
            // Decoders consume in small steps; SHA-256 is much faster on big
            // batches, so stage the consumed bytes and hash 256 KiB at a time.
            let b = &b[..amt];
            if self.stage.len() + b.len() > STAGE {
                self.hasher.update(&self.stage);
                self.stage.clear();
            }
            if b.len() >= STAGE {
                self.hasher.update(b);
            } else {
                self.stage.extend_from_slice(b);
            }
        }
        self.count += amt as u64;
        self.inner.consume(amt);
    }
}

/// What the decompressing thread reports when it is done.
pub struct SourceSummary {
    pub compression: Compression,
    pub digest: String,
    pub compressed_size: u64,
}

pub enum Msg {
    Data(Vec<u8>),
    End,
}

/// Run in the decompressing thread: read `src` to its end, send the tar
/// bytes as chunks. Returns the compressed digest. `abort` is polled.
pub fn decompress_into<R: BufRead>(
    mut src: R,
    tx: SyncSender<Msg>,
    pool: Receiver<Vec<u8>>,
    abort: &AtomicBool,
) -> Result<SourceSummary> {
    // Peek the magic: read up to 6 bytes, stitched back in front.
    let mut head = Vec::with_capacity(6);
    while head.len() < 6 {
        let b = match src.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read layer", e)),
        };
        if b.is_empty() {
            break;
        }
        let n = b.len().min(6 - head.len());
        head.extend_from_slice(&b[..n]);
        src.consume(n);
    }
    let compression = detect(&head).map_err(Error::Corrupt)?;
    let mut hb = HashingBuf { inner: src, prefix: head, prefix_pos: 0, hasher: Sha256::new(), count: 0, source_error: None, stage: Vec::with_capacity(STAGE) };

    let res = match compression {
        Compression::None => pump(&mut hb, &tx, &pool, abort),
        Compression::Gzip => {
            let mut d = flate2::bufread::MultiGzDecoder::new(&mut hb);
            pump(&mut d, &tx, &pool, abort)
        }
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(&mut hb) {
            Ok(mut d) => pump(&mut d, &tx, &pool, abort),
            Err(e) => Err(PumpErr::Read(e)),
        },
    };
    match res {
        Ok(()) => {}
        Err(PumpErr::Gone) => return Err(Error::corrupt("extraction stopped")),
        Err(PumpErr::Aborted) => return Err(Error::Aborted),
        Err(PumpErr::Read(e)) => {
            if let Some(se) = hb.source_error.take() {
                if se.kind() == io::ErrorKind::Other && se.to_string() == ABORTED_MSG {
                    return Err(Error::Aborted);
                }
                return Err(Error::io("read layer", se));
            }
            return Err(Error::corrupt(format!("{} stream: {}", compression.as_str(), describe(&e))));
        }
    }
    // Whatever follows the compressed stream is part of the blob (and of its
    // digest); the decoders above read to the end already, this only matters
    // if one stops early.
    loop {
        let n = match hb.fill_buf() {
            Ok(b) => b.len(),
            Err(e) => return Err(Error::io("read layer", e)),
        };
        if n == 0 {
            break;
        }
        hb.consume(n);
    }
    let _ = tx.send(Msg::End);
    let HashingBuf { mut hasher, stage, count, .. } = hb;
    hasher.update(&stage);
    Ok(SourceSummary { compression, digest: crate::digest::finish(hasher), compressed_size: count })
}

/// Message a source uses (as an `io::Error` of kind Other) to say "aborted".
pub const ABORTED_MSG: &str = "dockyard: layer stream aborted";

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "truncated (unexpected end of stream)".into(),
        _ => e.to_string(),
    }
}

enum PumpErr {
    Read(io::Error),
    Gone,
    Aborted,
}

fn pump<R: Read>(r: &mut R, tx: &SyncSender<Msg>, pool: &Receiver<Vec<u8>>, abort: &AtomicBool) -> std::result::Result<(), PumpErr> {
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(PumpErr::Aborted);
        }
        let mut buf = match pool.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => Vec::with_capacity(CHUNK),
        };
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        let mut eof = false;
        while filled < CHUNK {
            match r.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PumpErr::Read(e)),
            }
        }
        buf.truncate(filled);
        let t0 = std::time::Instant::now();
        let sent = filled == 0 || tx.send(Msg::Data(buf)).is_ok();
        WAIT_SEND.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        if !sent {
            return Err(PumpErr::Gone);
        }
        if eof {
            return Ok(());
        }
    }
}

/// The consumer side: a `Read` over the chunks, hashing each chunk whole as
/// it arrives (the diff ID covers every byte of the tar stream, trailing
/// padding included, because the extractor drains it to the end).
pub struct ChunkReader {
    rx: Receiver<Msg>,
    pool: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    hasher: Option<Sha256>,
    pub count: u64,
    /// Set once `read` returned 0 (end of stream seen).
    pub eof: bool,
    /// The decompressor vanished without `End` (its own error explains why).
    pub broken: bool,
    /// Shared copy of `broken`, readable after the reader was consumed.
    pub broken_flag: Arc<AtomicBool>,
}

impl ChunkReader {
    pub fn new(rx: Receiver<Msg>, pool: SyncSender<Vec<u8>>, hash: bool) -> Self {
        ChunkReader {
            rx,
            pool,
            cur: Vec::new(),
            pos: 0,
            hasher: if hash { Some(Sha256::new()) } else { None },
            count: 0,
            eof: false,
            broken: false,
            broken_flag: Arc::new(AtomicBool::new(false)),
        }
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let t0 = std::time::Instant::now();
        let m = self.rx.recv();
        WAIT_RECV.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        match m {
            Ok(Msg::Data(v)) => {
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&v);
                }
                self.count += v.len() as u64;
                let old = std::mem::replace(&mut self.cur, v);
                self.pos = 0;
                if old.capacity() >= CHUNK {
                    let _ = self.pool.try_send(old);
                }
                Ok(true)
            }
            Ok(Msg::End) => {
                self.eof = true;
                Ok(false)
            }
            Err(_) => {
                self.broken = true;
                self.broken_flag.store(true, Ordering::Relaxed);
                self.eof = true;
                Err(io::Error::other("decompression failed"))
            }
        }
    }

    /// Consume the rest of the stream (hashing it); returns how many bytes
    /// were left.
    pub fn drain(&mut self) -> io::Result<u64> {
        let mut n = (self.cur.len() - self.pos) as u64;
        self.pos = self.cur.len();
        while self.next_chunk()? {
            n += self.cur.len() as u64;
            self.pos = self.cur.len();
        }
        Ok(n)
    }

    pub fn diff_id(&mut self) -> Option<String> {
        self.hasher.take().map(crate::digest::finish)
    }

    /// Only the remaining bytes in the current chunk (to check trailing data).
    pub fn remaining_in_chunk(&self) -> &[u8] {
        &self.cur[self.pos..]
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.cur.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Make the channel pair between decompressor and consumer.
pub fn channel(hash_tar: bool) -> (SyncSender<Msg>, Receiver<Vec<u8>>, ChunkReader) {
    let (tx, rx) = sync_channel(DEPTH);
    let (ptx, prx) = sync_channel(DEPTH + 2);
    (tx, prx, ChunkReader::new(rx, ptx, hash_tar))
}

/// Microseconds the decompressor spent blocked on a full queue, and the
/// extractor on an empty one (process totals; for benchmarks/tuning).
pub static WAIT_SEND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static WAIT_RECV: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Shared abort flag.
pub type AbortFlag = Arc<AtomicBool>;
