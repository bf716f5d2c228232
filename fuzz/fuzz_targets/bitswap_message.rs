#![no_main]

#[path = "../bitswap/body.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::bitswap_message(data));
