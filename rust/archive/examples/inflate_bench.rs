//! Micro-benchmark of the extraction pipeline's stages on one layer file:
//! `cargo run --release -p dockyard-archive --example inflate_bench -- layer.tar.gz`
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("layer path");
    let data = std::fs::read(&path).unwrap();
    let t = Instant::now();
    let mut h = Sha256::new();
    h.update(&data);
    let _ = h.finalize();
    let d = t.elapsed().as_secs_f64();
    println!("sha256 of {} MB: {:.3}s ({:.0} MB/s)", data.len() / 1_000_000, d, data.len() as f64 / d / 1e6);

    let t = Instant::now();
    let mut dec = flate2::bufread::MultiGzDecoder::new(&data[..]);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0usize;
    loop {
        let k = dec.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        n += k;
    }
    let d = t.elapsed().as_secs_f64();
    println!("inflate (flate2/zlib-rs, with crc32) → {} MB: {:.3}s ({:.0} MB/s out)", n / 1_000_000, d, n as f64 / d / 1e6);

    let t = Instant::now();
    let mut dec = flate2::bufread::DeflateDecoder::new(&data[10..]);
    let mut m = 0usize;
    loop {
        match dec.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => m += k,
        }
    }
    let d = t.elapsed().as_secs_f64();
    println!("raw inflate (no crc) → {} MB: {:.3}s ({:.0} MB/s out)", m / 1_000_000, d, m as f64 / d / 1e6);
}
