//! Tar-split: the parts of a layer's original tar stream that are not file
//! contents (headers, PAX records, padding, the end marker), recorded while
//! the layer is extracted, so the exact stream, and so its diff ID, can be
//! rebuilt later from the extracted files. `save` and `push` need that: a
//! freshly written tar would have another digest than the one in the image
//! config. Docker keeps the same kind of record (`tar-split.json.gz`).
//!
//! Format (zstd-compressed): a sequence of records,
//! `b'R' <u64 len> <bytes>` for raw stream bytes and
//! `b'F' <u64 size> <u32 len> <path>` for `size` bytes of content read from
//! the extracted file at `path` (relative to the layer root).

use crate::digest;
use crate::error::{Ctx, Error, Result};
use crate::fsops::{openat2_retry, Root};
use rustix::fs::{OFlags, ResolveFlags};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;

/// What the extractor tells the recorder, and what the reader feeds it.
#[derive(Default)]
pub struct Recorder {
    out: Vec<u8>,
    raw: Vec<u8>,
    file_left: u64,
    /// Stream bytes seen so far.
    pos: u64,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stream offset of the next byte to be read.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    fn flush_raw(&mut self) {
        if !self.raw.is_empty() {
            self.out.push(b'R');
            self.out.extend_from_slice(&(self.raw.len() as u64).to_le_bytes());
            self.out.append(&mut self.raw);
        }
    }

    /// The next `size` stream bytes are the content of `path`, which will be
    /// on disk after extraction. Call when the stream is at the content start.
    pub fn begin_file(&mut self, path: &[u8], size: u64) {
        if size == 0 {
            return;
        }
        self.flush_raw();
        self.out.push(b'F');
        self.out.extend_from_slice(&size.to_le_bytes());
        self.out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        self.out.extend_from_slice(path);
        self.file_left = size;
    }

    fn observe(&mut self, mut data: &[u8]) {
        self.pos += data.len() as u64;
        if self.file_left > 0 {
            let k = (self.file_left.min(data.len() as u64)) as usize;
            self.file_left -= k as u64;
            data = &data[k..];
        }
        self.raw.extend_from_slice(data);
    }

    /// The finished record, compressed.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.flush_raw();
        zstd::bulk::compress(&self.out, 3).map_err(|e| Error::io("compress tar-split", e))
    }
}

/// A reader that shows every byte it passes on to a shared [`Recorder`].
pub struct SplitReader<R> {
    pub inner: R,
    rec: Option<Rc<RefCell<Recorder>>>,
}

impl<R> SplitReader<R> {
    pub fn new(inner: R, rec: Option<Rc<RefCell<Recorder>>>) -> Self {
        Self { inner, rec }
    }
}

impl<R: Read> Read for SplitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(rec) = &self.rec {
            rec.borrow_mut().observe(&buf[..n]);
        }
        Ok(n)
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if buf.len() < n {
        return Err(Error::corrupt("tar-split record is truncated"));
    }
    let (a, b) = buf.split_at(n);
    *buf = b;
    Ok(a)
}

fn u64_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Bytes of file contents the layer holds (what Docker reports as a layer's
/// size: the sum of its regular files, not the tar's length).
pub fn content_size(split: &[u8]) -> Result<u64> {
    let data = zstd::stream::decode_all(split).map_err(|e| Error::corrupt(format!("tar-split: {e}")))?;
    let mut rest: &[u8] = &data;
    let mut total = 0u64;
    while !rest.is_empty() {
        match take(&mut rest, 1)?[0] {
            b'R' => {
                let n = u64_of(take(&mut rest, 8)?) as usize;
                take(&mut rest, n)?;
            }
            b'F' => {
                total += u64_of(take(&mut rest, 8)?);
                let plen = u32::from_le_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes")) as usize;
                take(&mut rest, plen)?;
            }
            _ => return Err(Error::corrupt("tar-split record has an unknown tag")),
        }
    }
    Ok(total)
}

/// Rebuild the original tar stream of the layer extracted at `root` into
/// `out`. Returns (diff ID, size). Files are opened beneath `root` only.
pub fn assemble<W: Write + ?Sized>(split: &[u8], root: &Path, out: &mut W) -> Result<(String, u64)> {
    let data = zstd::stream::decode_all(split).map_err(|e| Error::corrupt(format!("tar-split: {e}")))?;
    let root = Root::open(root)?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut rest: &[u8] = &data;
    while !rest.is_empty() {
        let tag = take(&mut rest, 1)?[0];
        match tag {
            b'R' => {
                let n = u64_of(take(&mut rest, 8)?) as usize;
                let bytes = take(&mut rest, n)?;
                h.update(bytes);
                out.write_all(bytes).ctx(|| "write layer tar".to_string())?;
                size += n as u64;
            }
            b'F' => {
                let want = u64_of(take(&mut rest, 8)?);
                let plen = u32::from_le_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes")) as usize;
                let path = take(&mut rest, plen)?;
                let fd = openat2_retry(
                    root.fd(),
                    path,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                )
                .map_err(|e| Error::io(format!("open {} in layer", String::from_utf8_lossy(path)), e.into()))?;
                let mut f = File::from(fd).take(want);
                let mut got = 0u64;
                loop {
                    let k = f.read(&mut buf).ctx(|| "read layer file".to_string())?;
                    if k == 0 {
                        break;
                    }
                    h.update(&buf[..k]);
                    out.write_all(&buf[..k]).ctx(|| "write layer tar".to_string())?;
                    got += k as u64;
                }
                if got != want {
                    return Err(Error::corrupt(format!(
                        "layer file {} changed since extraction ({} of {} bytes)",
                        String::from_utf8_lossy(path),
                        got,
                        want
                    )));
                }
                size += want;
            }
            _ => return Err(Error::corrupt("tar-split record has an unknown tag")),
        }
    }
    Ok((digest::finish(h), size))
}

/// The tar-split record of a layer tar written from files that stay where
/// the tar's names say (a layer made in place, its diff tarred once): the
/// same record extraction would have kept, without writing any file.
pub fn record_file(src: &Path) -> Result<Vec<u8>> {
    let f = File::open(src).ctx(|| format!("open {}", src.display()))?;
    let rec = Rc::new(RefCell::new(Recorder::new()));
    let mut ar = tar::Archive::new(SplitReader::new(io::BufReader::with_capacity(1 << 20, f), Some(rec.clone())));
    let bad = |e: io::Error| Error::corrupt(format!("layer tar: {e}"));
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let et = e.header().entry_type();
        let sparse = et.is_gnu_sparse()
            || e.pax_extensions().map_err(bad)?.is_some_and(|mut x| x.any(|p| p.is_ok_and(|p| p.key_bytes().starts_with(b"GNU.sparse"))));
        if (et.is_file() || et.is_contiguous()) && !sparse && rec.borrow().pos() == e.raw_file_position() {
            let name = crate::fsops::clean_entry_name(&e.path_bytes())?;
            rec.borrow_mut().begin_file(&name, e.size());
        }
        io::copy(&mut e, &mut io::sink()).map_err(bad)?;
    }
    // The end blocks and any padding after them belong to the stream.
    let mut reader = ar.into_inner();
    io::copy(&mut reader, &mut io::sink()).map_err(bad)?;
    drop(reader);
    Rc::try_unwrap(rec).map_err(|_| Error::corrupt("tar-split recorder still shared"))?.into_inner().finish()
}
