//! Extraction tests: hashing, compression, breakout refusal and clean-up,
//! whiteouts in both modes, a round trip through `create`, PAX times.

use super::meta::parse_pax_time;
use super::*;
use crate::create::{create_layer, CreateOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn tar_of(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().unwrap()
}

fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    // set_path refuses "..": write the raw name for the malicious cases.
    let nb = name.as_bytes();
    h.as_old_mut().name[..nb.len()].copy_from_slice(nb);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn symlink(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_path(name).unwrap();
    h.set_link_name(target).unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
}

fn run(data: &[u8], target: &Path, wh: Whiteouts) -> Result<LayerInfo> {
    let abort = AtomicBool::new(false);
    extract(std::io::Cursor::new(data.to_vec()), target, wh, &abort)
}

#[test]
fn extracts_and_hashes() {
    let d = tempfile::tempdir().unwrap();
    let data = tar_of(|b| file(b, "a/b/c.txt", b"hello", 0o4755));
    let info = run(&data, d.path(), Whiteouts::Overlay).unwrap();
    assert_eq!(info.diff_id, crate::digest::of_bytes(&data));
    assert_eq!(info.digest, info.diff_id);
    assert_eq!(info.size, data.len() as u64);
    let p = d.path().join("a/b/c.txt");
    assert_eq!(std::fs::read(&p).unwrap(), b"hello");
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o4755);
}

#[test]
fn gzip_digest_covers_compressed_bytes() {
    let d = tempfile::tempdir().unwrap();
    let data = tar_of(|b| file(b, "x", &vec![7u8; 100_000], 0o644));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    let info = run(&gz, d.path(), Whiteouts::Overlay).unwrap();
    assert_eq!(info.digest, crate::digest::of_bytes(&gz));
    assert_eq!(info.diff_id, crate::digest::of_bytes(&data));
    assert_eq!(info.compression, crate::Compression::Gzip);
    // truncated: corrupt, target emptied
    let e = tempfile::tempdir().unwrap();
    let err = run(&gz[..gz.len() - 10], e.path(), Whiteouts::Overlay).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert_eq!(std::fs::read_dir(e.path()).unwrap().count(), 0);
}

#[test]
fn refuses_breakouts_and_cleans_up() {
    let d = tempfile::tempdir().unwrap();
    let data = tar_of(|b| {
        file(b, "ok", b"ok", 0o644);
        file(b, "../escape", b"x", 0o644);
    });
    let err = run(&data, d.path(), Whiteouts::Overlay).unwrap_err();
    assert!(matches!(err, Error::Unsafe(_)), "{err}");
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn climbing_symlink_is_kept_and_resolves_inside() {
    // As in dockerd's chrooted untar: the link is kept, and a path through it
    // stops at the root.
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let data = tar_of(|b| {
        symlink(b, "s", "..");
        file(b, "s/x", b"x", 0o644);
    });
    run(&data, &root, Whiteouts::Overlay).unwrap();
    assert_eq!(std::fs::read_link(root.join("s")).unwrap(), std::path::Path::new(".."));
    assert_eq!(std::fs::read(root.join("x")).unwrap(), b"x");
    assert!(!d.path().join("x").exists());
}

#[test]
fn absolute_symlink_parent_stays_inside() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let data = tar_of(|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_path("etc").unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        symlink(b, "evil", "/");
        file(b, "evil/etc/x", b"x", 0o644);
    });
    run(&data, &root, Whiteouts::Overlay).unwrap();
    assert_eq!(std::fs::read(root.join("etc/x")).unwrap(), b"x");
}

#[test]
fn naive_opaque_keeps_this_layers_entries() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("o/old")).unwrap();
    std::fs::write(d.path().join("o/stale"), b"s").unwrap();
    let data = tar_of(|b| {
        file(b, "o/new", b"n", 0o644);
        file(b, "o/.wh..wh..opq", b"", 0o644);
        file(b, "o/later", b"l", 0o644);
    });
    run(&data, d.path(), Whiteouts::Naive).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(d.path().join("o")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, vec!["later", "new"]);
}

#[test]
fn overlay_whiteout_is_a_char_device() {
    let d = tempfile::tempdir().unwrap();
    let data = tar_of(|b| file(b, "dir/.wh.gone", b"", 0o644));
    run(&data, d.path(), Whiteouts::Overlay).unwrap();
    let m = std::fs::symlink_metadata(d.path().join("dir/gone")).unwrap();
    assert_eq!(m.mode() & libc::S_IFMT, libc::S_IFCHR);
    assert_eq!(m.rdev(), 0);
}

#[test]
fn plain_mode_keeps_whiteout_names_as_files() {
    let d = tempfile::tempdir().unwrap();
    let data = tar_of(|b| {
        file(b, "dir/.wh.gone", b"w", 0o644);
        file(b, "dir/.wh..wh..opq", b"", 0o644);
    });
    run(&data, d.path(), Whiteouts::Plain).unwrap();
    assert_eq!(std::fs::read(d.path().join("dir/.wh.gone")).unwrap(), b"w");
    assert!(d.path().join("dir/.wh..wh..opq").is_file());
}

#[test]
fn create_then_extract_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("a/b/f"), b"data").unwrap();
    std::fs::hard_link(src.join("a/b/f"), src.join("a/h")).unwrap();
    std::os::unix::fs::symlink("b/f", src.join("a/l")).unwrap();
    let mut out = Vec::new();
    let info = create_layer(&src, &mut out, &CreateOptions { compression: crate::Compression::Zstd, ..Default::default() }).unwrap();
    assert_eq!(info.digest, crate::digest::of_bytes(&out));
    let dst = d.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    let got = run(&out, &dst, Whiteouts::Naive).unwrap();
    assert_eq!(got, info);
    assert_eq!(std::fs::read(dst.join("a/h")).unwrap(), b"data");
    let (m1, m2) = (std::fs::metadata(dst.join("a/h")).unwrap(), std::fs::metadata(dst.join("a/b/f")).unwrap());
    assert_eq!(m1.ino(), m2.ino());
    assert_eq!(std::fs::read_link(dst.join("a/l")).unwrap(), Path::new("b/f"));
}

#[test]
fn pax_times() {
    let t = parse_pax_time(b"1600000000.25").unwrap();
    assert_eq!((t.tv_sec, t.tv_nsec), (1_600_000_000, 250_000_000));
    let t = parse_pax_time(b"-1.5").unwrap();
    assert_eq!((t.tv_sec, t.tv_nsec), (-2, 500_000_000));
    assert!(parse_pax_time(b"abc").is_none());
}

/// A sink that takes a few bytes, then says the disk is full.
struct FullDisk(usize);

impl Write for FullDisk {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = b.len().min(self.0);
        self.0 -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn create_into_a_full_disk_says_so() {
    // bigger than the chunks in flight: the walker finds the compressor gone
    let d = tempfile::tempdir().unwrap();
    std::fs::File::create(d.path().join("big")).unwrap().set_len(32 << 20).unwrap();
    let e = create_layer(d.path(), FullDisk(4096), &CreateOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("No space left on device"), "{msg}");
}
