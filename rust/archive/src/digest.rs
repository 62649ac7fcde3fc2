//! SHA-256 digests of files and byte streams, in Docker's `sha256:<hex>` form.
//!
//! `sha2` picks the SHA-NI code path at run time where the CPU has it, which is
//! what makes hashing cheaper than inflating a layer.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Render a finished hasher as `sha256:<64 hex>`.
pub fn finish(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

pub fn of_bytes(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    finish(h)
}

/// Hash a whole file with a large buffer; returns the digest and the byte count.
pub fn of_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    of_reader(&mut f)
}

pub fn of_reader<R: Read>(r: &mut R) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((finish(h), n))
}

/// A reader adaptor that hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, hasher: Sha256::new(), count: 0 }
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
    /// Digest and byte count of everything read so far.
    pub fn finish(self) -> (String, u64, R) {
        (finish(self.hasher), self.count, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.hasher.update(&buf[..k]);
        self.count += k as u64;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest() {
        assert_eq!(
            of_bytes(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn reader_matches_bytes() {
        let data = vec![7u8; 3 << 20];
        let (d, n) = of_reader(&mut &data[..]).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, of_bytes(&data));
    }
}
