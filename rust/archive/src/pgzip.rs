//! Gzip on every core, as pigz does it. The stream is cut into the pieces it
//! arrives in (1 MiB). Each piece is deflated on a thread of its own as a
//! raw deflate segment, primed with the 32 KiB before it so that matches
//! still reach back across the cut, and ended with a sync flush: byte
//! aligned and not final. The segments are written in order behind one gzip
//! header. Then come an empty final block and the trailer: the CRC-32 of the
//! whole stream, combined from the pieces' own, and its length. The output
//! depends only on the input and the level, never on how threads were
//! scheduled, so a layer compresses to the same digest every time.

use flate2::{Compress, Compression, Crc, FlushCompress};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// How far back deflate looks: the dictionary each piece starts with.
const WINDOW: usize = 32 << 10;

struct Job {
    seq: u64,
    data: Vec<u8>,
    dict: Vec<u8>,
}

type Done = (u64, io::Result<(Vec<u8>, Crc)>);

/// Compress what arrives on `rx` into `out` as one gzip member, on
/// `threads` threads (at least one).
pub fn gzip_parallel<W: Write>(rx: Receiver<Vec<u8>>, out: &mut W, level: Compression, threads: usize) -> io::Result<()> {
    out.write_all(&header(level))?;
    let threads = threads.max(1);
    // Pieces between the reader and the writer: a bound on the memory held
    // while one slow piece keeps the others waiting to be written.
    let (slot_tx, slot_rx) = sync_channel::<()>(threads * 3);
    let (job_tx, job_rx) = sync_channel::<Job>(threads);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = sync_channel::<Done>(threads * 3);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (jobs, done) = (Arc::clone(&job_rx), done_tx.clone());
            s.spawn(move || worker(&jobs, &done, level));
        }
        drop((job_rx, done_tx));
        s.spawn(move || feed(rx, &job_tx, &slot_tx));
        let r = collect(&done_rx, &slot_rx, out);
        // On an error the receivers go first, so every thread's next send
        // fails and it ends (and the producer's sends then fail in turn).
        drop((done_rx, slot_rx));
        r
    })
}

fn header(level: Compression) -> [u8; 10] {
    // As flate2's GzEncoder writes it: no name, no mtime, OS "unknown".
    let xfl = match level.level() {
        l if l >= Compression::best().level() => 2,
        l if l <= Compression::fast().level() => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// Hand each piece to the workers with the window before it.
fn feed(rx: Receiver<Vec<u8>>, jobs: &SyncSender<Job>, slots: &SyncSender<()>) {
    let mut window: Vec<u8> = Vec::new();
    let mut seq = 0u64;
    for data in rx {
        if data.is_empty() {
            continue;
        }
        let dict = window.clone();
        if data.len() >= WINDOW {
            window.clear();
            window.extend_from_slice(&data[data.len() - WINDOW..]);
        } else {
            window.extend_from_slice(&data);
            let cut = window.len().saturating_sub(WINDOW);
            window.drain(..cut);
        }
        if slots.send(()).is_err() || jobs.send(Job { seq, data, dict }).is_err() {
            return; // the writer stopped
        }
        seq += 1;
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>, done: &SyncSender<Done>, level: Compression) {
    loop {
        let job = match jobs.lock().unwrap().recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let r = deflate_piece(&job.data, &job.dict, level).map(|seg| {
            let mut crc = Crc::new();
            crc.update(&job.data);
            (seg, crc)
        });
        if done.send((job.seq, r)).is_err() {
            return;
        }
    }
}

/// Bits per byte above which a piece is taken for compressed data already
/// (a jar, a gzip, a PNG: 7.99 and more) and stored as it is: deflate would
/// spend its full effort to save well under 1%. Text and binaries sit at 4-6.
const STORE_ABOVE: f64 = 7.97;

/// The order-0 entropy of `data`, in bits per byte.
fn entropy(data: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| {
        let p = c as f64 / n;
        -p * p.log2()
    }).sum()
}

/// One raw deflate segment ending in a sync flush.
fn deflate_piece(data: &[u8], dict: &[u8], level: Compression) -> io::Result<Vec<u8>> {
    let bad = |e: flate2::CompressError| io::Error::other(format!("deflate: {e}"));
    let level = if data.len() >= 64 << 10 && entropy(data) > STORE_ABOVE { Compression::none() } else { level };
    let mut c = Compress::new(level, false);
    if !dict.is_empty() && level != Compression::none() {
        c.set_dictionary(dict).map_err(bad)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    let mut used = 0usize;
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(data.len() / 4 + 4096);
        }
        let before = c.total_in();
        c.compress_vec(&data[used..], &mut out, FlushCompress::Sync).map_err(bad)?;
        used += (c.total_in() - before) as usize;
        // The flush is complete once a call leaves room to spare.
        if used == data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

/// Write the segments in order as they come back, then the end.
fn collect<W: Write>(done: &Receiver<Done>, slots: &Receiver<()>, out: &mut W) -> io::Result<()> {
    let mut pending: BTreeMap<u64, (Vec<u8>, Crc)> = BTreeMap::new();
    let mut next = 0u64;
    let mut crc = Crc::new();
    for (seq, r) in done.iter() {
        pending.insert(seq, r?);
        while let Some((seg, piece)) = pending.remove(&next) {
            out.write_all(&seg)?;
            crc.combine(&piece);
            next += 1;
            let _ = slots.recv();
        }
    }
    // Empty pieces were skipped, so `pending` is empty here unless a piece went missing.
    if !pending.is_empty() {
        return Err(io::Error::other("a compressed piece went missing"));
    }
    // An empty final block (fixed Huffman: BFINAL, BTYPE=01, end of block).
    out.write_all(&[0x03, 0x00])?;
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&crc.amount().to_le_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(pieces: Vec<Vec<u8>>, threads: usize) -> Vec<u8> {
        let (tx, rx) = sync_channel(2);
        let whole: Vec<u8> = pieces.concat();
        let feeder = std::thread::spawn(move || {
            for p in pieces {
                tx.send(p).unwrap();
            }
        });
        let mut out = Vec::new();
        gzip_parallel(rx, &mut out, Compression::new(2), threads).unwrap();
        feeder.join().unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, whole);
        out
    }

    fn data(n: usize, seed: u64) -> Vec<u8> {
        // Half text-like (compressible), half noise.
        let mut x = seed;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if (i / 4096) % 2 == 0 { b"the quick brown fox "[i % 20] } else { (x >> 33) as u8 }
            })
            .collect()
    }

    #[test]
    fn decodes_to_the_input_whatever_the_threads() {
        let pieces = vec![data(1 << 20, 1), data(1 << 20, 2), data(1000, 3), Vec::new(), data(70_000, 4)];
        let one = roundtrip(pieces.clone(), 1);
        let four = roundtrip(pieces, 4);
        assert_eq!(one, four, "the output depends on the threads");
    }

    #[test]
    fn compressed_data_is_stored_and_text_is_not() {
        let noise = {
            let mut x = 7u64;
            (0..1 << 20).map(|_| { x = x.wrapping_mul(6364136223846793005).wrapping_add(1); (x >> 33) as u8 }).collect::<Vec<u8>>()
        };
        assert!(entropy(&noise) > STORE_ABOVE);
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(30_000);
        assert!(entropy(&text) < 5.0);
        let out = roundtrip(vec![text.clone(), noise.clone(), text.clone()], 2);
        // The noise went in stored blocks (5 bytes of header per 64 KiB), the text shrank.
        assert!(out.len() > noise.len() && out.len() < noise.len() + 40_000, "{}", out.len());
    }

    #[test]
    fn empty_and_tiny_streams() {
        roundtrip(Vec::new(), 2);
        roundtrip(vec![b"x".to_vec()], 2);
        roundtrip(vec![b"x".to_vec(), b"y".to_vec(), data(40_000, 9)], 3);
    }

    #[test]
    fn matches_reach_across_pieces() {
        // A second piece repeating the first one's last 16 KiB is all
        // back-references (the last 32 KiB of the first are its dictionary).
        let a = data(1 << 20, 5);
        let out = roundtrip(vec![a.clone(), a[a.len() - WINDOW / 2..].to_vec()], 2);
        let alone = roundtrip(vec![a], 2);
        assert!(out.len() < alone.len() + 1024, "{} vs {}", out.len(), alone.len());
    }

    #[test]
    fn a_failing_writer_stops_everything() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = sync_channel(1);
        let feeder = std::thread::spawn(move || {
            for i in 0..64 {
                if tx.send(data(1 << 20, i)).is_err() {
                    return;
                }
            }
        });
        assert!(gzip_parallel(rx, &mut Full, Compression::new(2), 2).is_err());
        feeder.join().unwrap();
    }
}
