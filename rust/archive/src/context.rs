//! A build context as dockerd's classic builder hashes it: one pass over the
//! uploaded tar (maybe gzip or zstd) that keeps a plain copy and lists every
//! entry with its tarsum-v1 sum (moby pkg/tarsum `v1TarHeaderSelect`: the
//! header fields but mtime, with uname/gname blanked, then sorted xattrs,
//! then the data), so a fully cached build never writes the files out.

use crate::error::{show, Ctx, Error, Result};
use crate::fsops;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

/// One entry of the context, by its cleaned relative name.
pub struct CtxEntry {
    /// Components joined by `/`, `..` stopping at the root (empty: the root).
    pub key: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub size: u64,
    pub link: Vec<u8>,
    /// Where the data starts in the plain stream.
    pub offset: u64,
    pub sum: String,
}

/// Copies what it reads into `out` (the plain stream of a compressed tar).
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Index `src` (a tar, plain or compressed). A compressed one is written out
/// plain to `plain_out` (the offsets then refer to it); returns the entries
/// in stream order and whether `plain_out` was written.
pub fn index(src: &Path, plain_out: &Path) -> Result<(Vec<CtxEntry>, bool)> {
    let mut f = File::open(src).ctx(|| format!("open {}", src.display()))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).ctx(|| "read the context".to_string())?;
    drop(f);
    let f = BufReader::with_capacity(1 << 20, File::open(src).ctx(|| format!("open {}", src.display()))?);
    let gzip = n >= 2 && magic[..2] == [0x1f, 0x8b];
    let zstd = n >= 4 && magic == [0x28, 0xb5, 0x2f, 0xfd];
    if !gzip && !zstd {
        return Ok((entries(f)?, false));
    }
    let out = io::BufWriter::with_capacity(1 << 20, File::create(plain_out).ctx(|| format!("create {}", plain_out.display()))?);
    let bad = |e: io::Error| Error::corrupt(format!("decompress the build context: {e}"));
    let list = if gzip {
        let mut t = Tee { inner: flate2::read::MultiGzDecoder::new(f), out };
        let l = entries(&mut t)?;
        io::copy(&mut t, &mut io::sink()).map_err(bad)?;
        t.out.flush().ctx(|| "write the context".to_string())?;
        l
    } else {
        let mut t = Tee { inner: zstd::stream::read::Decoder::with_buffer(f).map_err(bad)?, out };
        let l = entries(&mut t)?;
        io::copy(&mut t, &mut io::sink()).map_err(bad)?;
        t.out.flush().ctx(|| "write the context".to_string())?;
        l
    };
    Ok((list, true))
}

fn entries<R: Read>(src: R) -> Result<Vec<CtxEntry>> {
    let bad = |e: io::Error| Error::corrupt(format!("failed to read the build context: {e}"));
    let mut ar = tar::Archive::new(src);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let h = e.header();
        let mut tf = h.entry_type().as_byte();
        if tf == b'g' {
            continue;
        }
        let raw = e.path_bytes().into_owned();
        if tf == 0 {
            tf = if raw.ends_with(b"/") { b'5' } else { b'0' };
        }
        let mut name = raw.clone();
        if tf == b'5' {
            while name.ends_with(b"/") {
                name.pop();
            }
            name.push(b'/');
        }
        let mode = h.mode().map_err(bad)?;
        let (uid, gid) = (h.uid().map_err(bad)?, h.gid().map_err(bad)?);
        let size = e.size();
        let link = e.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
        let major = h.device_major().ok().flatten().unwrap_or(0);
        let minor = h.device_minor().ok().flatten().unwrap_or(0);
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if let Some(x) = e.pax_extensions().map_err(bad)? {
            for p in x {
                let p = p.map_err(bad)?;
                if let Some(k) = p.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((k.to_vec(), p.value_bytes().to_vec()));
                }
            }
        }
        xattrs.sort();
        let mut s = Sha256::new();
        for (k, v) in [
            (&b"name"[..], &name[..]),
            (b"mode", mode.to_string().as_bytes()),
            (b"uid", uid.to_string().as_bytes()),
            (b"gid", gid.to_string().as_bytes()),
            (b"size", size.to_string().as_bytes()),
            (b"typeflag", &[tf][..]),
            (b"linkname", &link[..]),
            (b"uname", b""),
            (b"gname", b""),
            (b"devmajor", major.to_string().as_bytes()),
            (b"devminor", minor.to_string().as_bytes()),
        ] {
            s.update(k);
            s.update(v);
        }
        for (k, v) in &xattrs {
            s.update(k);
            s.update(v);
        }
        let offset = e.raw_file_position();
        if matches!(tf, b'0' | b'7' | b'S') {
            loop {
                let k = e.read(&mut buf).map_err(bad)?;
                if k == 0 {
                    break;
                }
                s.update(&buf[..k]);
            }
        }
        // What the extractor would refuse is refused here, before any step
        // runs, as dockerd's untar of the whole context does. A symlink may
        // point anywhere: dockerd untars chrooted, and every later open here
        // resolves in the root.
        let key = fsops::clean_entry_name(&raw)?;
        if tf == b'1' && fsops::clean_link_target(&link).is_err() {
            return Err(Error::unsafe_path(format!("invalid hardlink {:?} -> {:?}", show(&key), show(&link))));
        }
        out.push(CtxEntry { key, typeflag: tf, mode, size, link, offset, sum: hex::encode(s.finalize()) });
    }
    Ok(out)
}
