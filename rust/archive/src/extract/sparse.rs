//! Sparse file contents: the PAX sparse formats (segments written at their
//! offsets) and GNU sparse entries, which arrive expanded (runs of zero
//! blocks are skipped so the holes stay holes).

use super::extractor::Extractor;
use super::meta::{parse_u64, Meta};
use super::tar_err;
use crate::error::{show, Ctx, Error, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

impl Extractor<'_> {
    /// PAX sparse formats 0.0/0.1 (map in the records) and 1.0 (map at the
    /// start of the data): data segments are written at their offsets, holes
    /// stay holes.
    pub(super) fn write_pax_sparse<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, f: &mut File, name: &[u8], meta: &Meta) -> Result<()> {
        let real = meta.sparse.real_size.unwrap_or(0);
        let stored = e.size();
        let mut consumed: u64 = 0;
        let map: Vec<u64> = if meta.sparse.is_v1() {
            // Decimal numbers, one per line: count, then offset/length pairs;
            // padded to a 512-byte block.
            let mut nums = Vec::new();
            let mut cur: Vec<u8> = Vec::new();
            let mut want: Option<u64> = None;
            let mut byte = [0u8; 1];
            loop {
                if let Some(w) = want {
                    if nums.len() as u64 == w * 2 {
                        break;
                    }
                }
                let n = e.read(&mut byte).map_err(tar_err)?;
                if n == 0 {
                    return Err(Error::corrupt(format!("{}: truncated sparse map", show(name))));
                }
                consumed += 1;
                if consumed > 1 << 20 {
                    return Err(Error::corrupt(format!("{}: sparse map too large", show(name))));
                }
                if byte[0] == b'\n' {
                    let v = parse_u64(&cur).ok_or_else(|| Error::corrupt(format!("{}: invalid sparse map", show(name))))?;
                    cur.clear();
                    if want.is_none() {
                        want = Some(v);
                    } else {
                        nums.push(v);
                    }
                } else {
                    cur.push(byte[0]);
                }
            }
            let pad = (512 - consumed % 512) % 512;
            let mut skip = vec![0u8; pad as usize];
            e.read_exact(&mut skip).map_err(|_| Error::corrupt(format!("{}: truncated sparse map", show(name))))?;
            consumed += pad;
            nums
        } else {
            meta.sparse.map.clone()
        };
        if map.len() % 2 != 0 {
            return Err(Error::corrupt(format!("{}: invalid sparse map", show(name))));
        }
        for pair in map.chunks(2) {
            let (off, len) = (pair[0], pair[1]);
            if off.checked_add(len).map(|end| end > real).unwrap_or(true) {
                return Err(Error::corrupt(format!("{}: sparse segment beyond the file size", show(name))));
            }
            f.seek(SeekFrom::Start(off)).ctx(|| format!("seek {}", show(name)))?;
            let mut left = len;
            while left > 0 {
                let k = (left as usize).min(self.buf.len());
                let n = e.read(&mut self.buf[..k]).map_err(tar_err)?;
                if n == 0 {
                    return Err(Error::corrupt(format!("truncated tar stream in sparse file {}", show(name))));
                }
                f.write_all(&self.buf[..n]).ctx(|| format!("write {}", show(name)))?;
                left -= n as u64;
                consumed += n as u64;
            }
        }
        if consumed > stored {
            return Err(Error::corrupt(format!("{}: sparse data exceeds the entry", show(name))));
        }
        f.set_len(real).ctx(|| format!("truncate {}", show(name)))?;
        Ok(())
    }

}

/// Write `data` at `*pos`, seeking over 4 KiB blocks that are all zeros
/// (GNU sparse entries arrive expanded; this keeps the holes).
pub(super) fn write_maybe_sparse(f: &mut File, data: &[u8], pos: &mut u64) -> std::io::Result<()> {
    const B: usize = 4096;
    let mut i = 0;
    while i < data.len() {
        let end = (i + B).min(data.len());
        let block = &data[i..end];
        if block.iter().all(|&b| b == 0) {
            *pos += block.len() as u64;
        } else {
            // Extend the run of non-zero blocks.
            let mut j = end;
            while j < data.len() {
                let e2 = (j + B).min(data.len());
                if data[j..e2].iter().all(|&b| b == 0) {
                    break;
                }
                j = e2;
            }
            f.seek(SeekFrom::Start(*pos))?;
            f.write_all(&data[i..j])?;
            *pos += (j - i) as u64;
            i = j;
            continue;
        }
        i = end;
    }
    Ok(())
}
