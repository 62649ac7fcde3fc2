//! A log file rotated as dockerd's loggerutils.LogFile rotates it: before a
//! write, a file that has reached max-size is renamed to `<log>.1` (the older
//! ones shifted up to `<log>.<max-file - 1>`) and a new one started; with
//! compress, `<log>.1` becomes `<log>.1.gz`, whose gzip header carries
//! `{"lastTime":"..."}` (the last entry's time) in its extra field, as
//! dockerd's readers expect. Compression runs in line (dockerd: a goroutine).

use flate2::{Compression, GzBuilder};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    /// 0: never rotate.
    max_size: u64,
    max_file: u32,
    compress: bool,
    last_time: (i64, u32),
}

fn open(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).mode(0o640);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(path)
}

fn numbered(path: &Path, i: u32, gz: bool) -> PathBuf {
    let mut p = path.to_path_buf().into_os_string();
    p.push(format!(".{i}{}", if gz { ".gz" } else { "" }));
    PathBuf::from(p)
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_size: u64, max_file: u32, compress: bool) -> std::io::Result<RotatingFile> {
        let file = open(&path, false)?;
        let size = file.metadata()?.len();
        let max_file = max_file.max(1);
        Ok(RotatingFile { path, file: Some(file), size, max_size, max_file, compress: compress && max_file > 1, last_time: (0, 0) })
    }

    /// Write one whole entry (rotating first if the file is full).
    pub fn write_entry(&mut self, entry: &[u8], secs: i64, nanos: u32) {
        if self.max_size > 0 && self.size >= self.max_size {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(entry).is_ok() {
                self.size += entry.len() as u64;
                self.last_time = (secs, nanos);
            } else {
                // A full disk took part of the entry: cut it off, so that the
                // entries written once there is room again start on a line.
                let _ = f.set_len(self.size);
                let _ = std::io::Seek::seek(f, std::io::SeekFrom::Start(self.size));
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        if self.max_file > 1 {
            let gz = self.compress;
            let _ = std::fs::remove_file(numbered(&self.path, self.max_file - 1, gz));
            for i in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(numbered(&self.path, i, gz), numbered(&self.path, i + 1, gz));
            }
            let first = numbered(&self.path, 1, false);
            if std::fs::rename(&self.path, &first).is_ok() && gz {
                let _ = compress(&first, &numbered(&self.path, 1, true), self.last_time);
            }
        }
        self.file = open(&self.path, true).ok();
        self.size = 0;
    }
}

/// `src` gzipped to `dst` with dockerd's header (extra field: the last
/// entry's time; OS 255 as Go writes it), then `src` removed.
pub fn compress(src: &Path, dst: &Path, last: (i64, u32)) -> std::io::Result<()> {
    let res = (|| {
        let mut input = File::open(src)?;
        let out = OpenOptions::new().create(true).write(true).truncate(true).mode(0o640).open(dst)?;
        let extra = format!("{{\"lastTime\":\"{}\"}}", super::rfc3339_nano(last.0, last.1));
        let mut gz = GzBuilder::new().extra(extra.into_bytes()).operating_system(255).write(out, Compression::default());
        std::io::copy(&mut input, &mut gz)?;
        gz.finish()?;
        Ok(())
    })();
    match res {
        Ok(()) => std::fs::remove_file(src),
        Err(e) => {
            let _ = std::fs::remove_file(dst);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn rotates_and_gzips_with_dockerds_header() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("container.log");
        let mut f = RotatingFile::open(p.clone(), 10, 3, true).unwrap();
        for i in 0..5u8 {
            f.write_entry(&[b'a' + i; 10], 1_767_323_045, 5);
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"eeeeeeeeee");
        assert!(!d.path().join("container.log.1").exists());
        assert!(!d.path().join("container.log.3.gz").exists());
        let raw = std::fs::read(d.path().join("container.log.1.gz")).unwrap();
        // ID1 ID2 CM=8 FLG=FEXTRA, MTIME 0, XFL, OS=255, XLEN (LE), extra.
        assert_eq!(&raw[..4], &[0x1f, 0x8b, 8, 4]);
        assert_eq!(raw[9], 255);
        let xlen = u16::from_le_bytes([raw[10], raw[11]]) as usize;
        assert_eq!(&raw[12..12 + xlen], b"{\"lastTime\":\"2026-01-02T03:04:05.000000005Z\"}");
        let mut s = Vec::new();
        GzDecoder::new(&raw[..]).read_to_end(&mut s).unwrap();
        assert_eq!(s, b"dddddddddd");
        let mut s = Vec::new();
        GzDecoder::new(File::open(d.path().join("container.log.2.gz")).unwrap()).read_to_end(&mut s).unwrap();
        assert_eq!(s, b"cccccccccc");
    }

    #[test]
    fn plain_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut f = RotatingFile::open(p.clone(), 4, 2, false).unwrap();
        for e in [b"1111", b"2222", b"3333"] {
            f.write_entry(e, 0, 0);
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"3333");
        assert_eq!(std::fs::read(d.path().join("c-json.log.1")).unwrap(), b"2222");
        assert!(!d.path().join("c-json.log.2").exists());
    }
}
