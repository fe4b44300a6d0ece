//! Inputs built to exhaust memory, beyond the fuzzer's 16 KiB reach: each reader refuses them
//! by name before sizing anything by them.

use std::io::Write;

use prefscope_core::text::{self, OnError, PairReader, TextFormat};

#[test]
fn a_choix_file_declaring_too_many_items_is_refused() {
    let text = format!("{{\"n_items\": {}, \"data\": [[0, 1]]}}", prefscope_core::rank::MAX_ITEMS + 1);
    let e = prefscope_core::rank::read_comparisons("big.json", &text).err().expect("refused").to_string();
    assert!(e.contains("n_items") && e.contains("at most"), "{e}");
    let ok = format!("{{\"n_items\": {}, \"data\": [[0, 1]]}}", 3);
    assert!(prefscope_core::rank::read_comparisons("ok.json", &ok).is_ok());
}

#[test]
fn rankings_that_expand_past_the_cap_are_refused() {
    // One ranking of L items expands to L²/2 entries: 6,000 items give 18 M > 2^24.
    let ranking: Vec<String> = (0..6000).map(|i| i.to_string()).collect();
    let text = format!("{{\"n_items\": 6000, \"data\": [[{}]]}}", ranking.join(","));
    let e = prefscope_core::rank::read_comparisons("long.json", &text).err().expect("refused").to_string();
    assert!(e.contains("choice-set entries"), "{e}");
}

#[test]
fn a_gpm_file_with_too_many_distinct_responses_is_refused() {
    let n = prefscope_core::data::MAX_ONE_HOT_ITEMS;
    let lines: String = (0..n / 2 + 1).map(|i| format!("{{\"chosen\": \"a{i}\", \"reject\": \"b{i}\"}}\n")).collect();
    let e = prefscope_core::data::parse_gpm_custom("many.jsonl", &lines).err().expect("refused").to_string();
    assert!(e.contains(&format!("more than {n} distinct responses")) && e.contains(&format!("many.jsonl:{}", n / 2 + 1)), "{e}");
}

#[test]
fn a_gzipped_line_longer_than_the_cap_is_refused_by_line() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"{\"chosen\": \"a\", \"rejected\": \"b\"}\n").unwrap();
    gz.write_all(&vec![b'x'; text::MAX_LINE_BYTES + 1]).unwrap();
    let bytes = gz.finish().unwrap();
    let mut reader = PairReader::new("bomb.jsonl.gz", text::decoded(&bytes[..], true), TextFormat::Auto, OnError::Skip);
    assert!(reader.next().unwrap().is_ok());
    let e = reader.next().unwrap().err().expect("refused").to_string();
    assert!(e.starts_with("bomb.jsonl.gz:2: line:") && e.contains("longer than 64 MiB"), "{e}");
}
