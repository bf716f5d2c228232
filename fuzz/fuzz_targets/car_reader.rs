#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vouch_dag_fuzz::car_reader(data);
});
