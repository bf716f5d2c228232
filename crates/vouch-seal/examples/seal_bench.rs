//! Seal throughput next to raw AES-256-GCM over the same buffer and chunking, in one run.
//!
//! `cargo run --release -p vouch-seal --example seal_bench [MiB]` (default 256).

use std::time::Instant;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use vouch_seal::{DataKey, SealOptions, open, seal, sealed_len, stream::DEFAULT_CHUNK_SIZE};

fn main() {
    let mib: usize = std::env::args().nth(1).map_or(256, |a| a.parse().expect("MiB must be an integer"));
    let len = mib << 20;
    let plain: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
    let chunk = DEFAULT_CHUNK_SIZE as usize;
    let key = DataKey::generate();

    // Raw AEAD: seal_in_place over the same buffer, same chunk size, tags kept aside.
    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose_secret()).expect("32-byte key"));
    let mut buf = plain.clone();
    let t = Instant::now();
    let mut tags = 0u64;
    for (i, c) in buf.chunks_mut(chunk).enumerate() {
        let mut n = [0u8; 12];
        n[7..11].copy_from_slice(&(i as u32).to_be_bytes());
        let tag =
            raw_key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::from(&[0u8; 76]), c).unwrap();
        tags += u64::from(tag.as_ref()[0]);
    }
    let raw = t.elapsed();
    std::hint::black_box(tags);

    // vouch-seal: Read -> Write, one chunk buffer.
    // Output buffers are touched before timing, as the raw anchor's is (its buffer is a clone):
    // first-touch page faults on a fresh GiB cost more than the cipher on some VMs.
    let touched = |n: usize| {
        let mut v = vec![1u8; n];
        v.clear();
        v
    };
    let mut out = touched(sealed_len(len as u64, DEFAULT_CHUNK_SIZE) as usize);
    let t = Instant::now();
    seal(&key, &plain[..], &mut out, SealOptions::default()).unwrap();
    let sealed = t.elapsed();

    let mut back = touched(len);
    let t = Instant::now();
    open(&key, &out[..], &mut back).unwrap();
    let opened = t.elapsed();
    assert_eq!(back, plain);

    let mbs = |d: std::time::Duration| len as f64 / 1e6 / d.as_secs_f64();
    println!("{mib} MiB, {} KiB chunks", chunk >> 10);
    println!("raw AES-256-GCM seal_in_place: {:8.0} MB/s", mbs(raw));
    println!(
        "vouch-seal seal (Read->Write): {:8.0} MB/s  ({:.2}x raw)",
        mbs(sealed),
        raw.as_secs_f64() / sealed.as_secs_f64()
    );
    println!(
        "vouch-seal open (Read->Write): {:8.0} MB/s  ({:.2}x raw)",
        mbs(opened),
        raw.as_secs_f64() / opened.as_secs_f64()
    );
}
