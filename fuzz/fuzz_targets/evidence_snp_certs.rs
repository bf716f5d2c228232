#![no_main]

#[path = "../attest/body.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::evidence_snp_certs(data));
