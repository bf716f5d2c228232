#![no_main]

#[path = "../receipt/body.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::receipt(data));
