#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prefscope_fuzz::gpm_jsonl(data));
