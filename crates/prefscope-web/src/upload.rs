//! Files dropped on the page: pair JSONL (TRL or GPM form) or a pair-embedding file from
//! `prefscope embed`. The compute worker reads a dropped file once ([`Dropped::read`]) and gives
//! each run its data ([`Dropped::run_data`]); the page only passes the bytes on. Plain Rust
//! (host-tested); errors name the file and line, and never panic.

use prefscope_core::{PairDataset, RunConfig};

/// Uploads larger than this many lines are refused: every distinct response becomes a one-hot item.
pub const MAX_UPLOAD_LINES: usize = 2000;

/// Whether the bytes are a pair-embedding file: a `.safetensors` name, or anything that starts
/// like one (an 8-byte header length, then `{`).
pub fn is_embeddings(name: &str, bytes: &[u8]) -> bool {
    name.ends_with(".safetensors") || (bytes.len() > 8 && bytes[0] != b'{' && bytes[8] == b'{')
}

/// A dropped file, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropped {
    pub name: String,
    /// An embedding file (`prefscope embed`): kept unsplit, because its held-out pairs follow the
    /// run's seed as `prefscope train --embeddings` splits them. A JSONL file is split once.
    pub embeddings: bool,
    data: PairDataset,
}

impl Dropped {
    /// Parse the file; an embedding file is also checked to split under `cfg`.
    pub fn read(name: &str, bytes: &[u8], cfg: &RunConfig) -> Result<Self, String> {
        let embeddings = is_embeddings(name, bytes);
        let data = if embeddings { read_embeddings(name, bytes, cfg)? } else { read_pairs(name, bytes)? };
        Ok(Self { name: name.to_string(), embeddings, data })
    }

    /// A run's data: an embedding file split by the run's seed, a JSONL file as read.
    pub fn run_data(&self, cfg: &RunConfig) -> Result<PairDataset, String> {
        if self.embeddings { split_by_seed(&self.data, cfg).map_err(|e| format!("{}: {e}", self.name)) } else { Ok(self.data.clone()) }
    }
}

/// Parse a pair-embedding file, unsplit; refuses one too small to hold out a pair.
fn read_embeddings(name: &str, bytes: &[u8], cfg: &RunConfig) -> Result<PairDataset, String> {
    let mut ds = prefscope_core::reward::embeddings::read_pair_embeddings(bytes).map_err(|e| format!("{name}: {e}"))?;
    // The file has no text; the pair list and the views label responses by index.
    ds.item_labels = (0..ds.n_items()).map(|i| format!("#{i}")).collect();
    split_by_seed(&ds, cfg).map_err(|e| format!("{name}: {e}"))?;
    Ok(ds)
}

/// An embedding file's split for this run: the core's, as `prefscope train --embeddings` makes it.
fn split_by_seed(ds: &PairDataset, cfg: &RunConfig) -> Result<PairDataset, String> {
    cfg.split_embeddings(ds.clone(), &format!("the file's {} pairs", ds.pairs.len())).map_err(|e| e.to_string())
}

/// Parse an uploaded pair file.
fn read_pairs(name: &str, bytes: &[u8]) -> Result<PairDataset, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| format!("{name}: not a text file"))?;
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    if lines > MAX_UPLOAD_LINES {
        return Err(format!("{name}: {lines} pairs; the page takes at most {MAX_UPLOAD_LINES} (each distinct response becomes a feature)"));
    }
    let mut ds = prefscope_core::reward::data::parse_gpm_custom(name, text).map_err(|e| e.to_string())?;
    if ds.pairs.len() < 2 {
        return Err(format!("{name}: needs at least two pairs, found {}", ds.pairs.len()));
    }
    ds.split(0.2, 0).map_err(|e| e.to_string())?;
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prefscope_core::{ModelKind, ScenarioKind};

    fn cfg(seed: u64) -> RunConfig {
        let mut c = RunConfig::new(ScenarioKind::Linear, ModelKind::Bt);
        c.seed = seed;
        c
    }

    #[test]
    fn a_jsonl_file_is_split_once_and_every_run_gets_it_whole() {
        let text: String = (0..10).map(|i| format!("{{\"chosen\": \"a{i}\", \"reject\": \"b{i}\"}}\n")).collect();
        let file = Dropped::read("p.jsonl", text.as_bytes(), &cfg(3)).unwrap();
        assert!(!file.embeddings);
        let (a, b) = (file.run_data(&cfg(3)).unwrap(), file.run_data(&cfg(4)).unwrap());
        assert_eq!(a, b, "a JSONL file's split does not follow the run's seed");
        assert_eq!(a.pairs.len(), 10);
        assert!(!a.eval.is_empty() && !a.train.is_empty());
    }

    #[test]
    fn bad_files_are_refused_by_name_and_line() {
        let e = Dropped::read("bad.jsonl", b"{\"chosen\": \"a\", \"reject\": \"b\"}\nnot json\n", &cfg(0)).unwrap_err();
        assert!(e.contains("bad.jsonl") && e.contains('2'), "{e}");
        let e = Dropped::read("bin.jsonl", &[0xff, 0xfe, 0x00], &cfg(0)).unwrap_err();
        assert!(e.contains("bin.jsonl"), "{e}");
        let many: String = (0..=MAX_UPLOAD_LINES).map(|i| format!("{{\"chosen\": \"a{i}\", \"reject\": \"b{i}\"}}\n")).collect();
        assert!(Dropped::read("big.jsonl", many.as_bytes(), &cfg(0)).unwrap_err().contains("at most"));
        let e = Dropped::read("e.safetensors", b"\x10\0\0\0\0\0\0\0{\"x\": 1}", &cfg(0)).unwrap_err();
        assert!(e.starts_with("e.safetensors: "), "{e}");
    }

    #[test]
    fn detects_embedding_files_by_name_or_header() {
        assert!(is_embeddings("x.safetensors", b"{"));
        assert!(is_embeddings("x.bin", b"\x10\0\0\0\0\0\0\0{\"a\"}"));
        assert!(!is_embeddings("x.jsonl", b"{\"chosen\": 1}"));
    }
}
