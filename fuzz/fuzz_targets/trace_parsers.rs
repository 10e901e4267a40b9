//! Arbitrary bytes into every trace parser: the first byte picks the format, the rest is the
//! file. A parser must return rows or a located error, never panic, and keep its row
//! invariants (`oae_workloads::traces::check_parser`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&pick, file)) = data.split_first() {
        let formats = oae_workloads::traces::registry();
        let fmt = &formats[usize::from(pick) % formats.len()];
        oae_workloads::traces::check_parser(fmt.name, file);
    }
});
