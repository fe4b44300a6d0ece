//! Preference pairs as text: readers for the formats people have, streamed line by line.
//!
//! * TRL standard: `{"prompt": str, "chosen": str, "rejected": str}`, or implicit prompt
//!   (`chosen`/`rejected` only; the shared prefix becomes the prompt, as TRL's `extract_prompt`).
//! * TRL conversational: the same keys holding lists of `{"role", "content"}` messages.
//! * Anthropic hh-rlhf: `chosen`/`rejected` whole transcripts `\n\nHuman: … \n\nAssistant: …`;
//!   the dialogue before the last Assistant turn is the prompt, that turn is the response.
//!
//! Optional per-line fields: `margin` (a number, TRL's RewardTrainer column), `chosen_ratings` /
//! `rejected_ratings` (arrays of numbers, one per attribute), and `subset` or `category`
//! (RewardBench-style scoring). Other keys are ignored. `.gz` files are decompressed on the fly;
//! nothing holds the whole file, so a file larger than memory can be read.
//!
//! Every malformed line is an [`Error::Data`] `file:line: field: what is wrong`; the caller picks
//! between stopping there and skipping with a count ([`OnError`]); nothing is dropped silently.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The format of a pair file; `Auto` decides per line from the shape of `chosen`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextFormat {
    #[default]
    Auto,
    Standard,
    Conversational,
    HhRlhf,
}

impl TextFormat {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(Self::Auto),
            "standard" => Ok(Self::Standard),
            "conversational" => Ok(Self::Conversational),
            "hh-rlhf" => Ok(Self::HhRlhf),
            _ => Err(crate::config_error("data.format", format!("unknown format `{name}` (auto, standard, conversational, hh-rlhf)"))),
        }
    }
}

/// What to do with a malformed line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Stop at the first malformed line with its error.
    #[default]
    Stop,
    /// Skip malformed lines, count them and keep the first few messages.
    Skip,
}

/// One preference pair in text. `prompt` is rendered text (conversations as `Role: content`
/// blocks); `chosen`/`rejected` are the responses only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextPair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    /// Per-pair margin (TRL `margin`).
    pub margin: Option<f32>,
    /// Per-attribute ratings of the chosen and rejected responses.
    pub ratings: Option<(Vec<f32>, Vec<f32>)>,
    /// RewardBench subset (`subset` or `category`).
    pub category: Option<String>,
    /// 1-based line in the source file.
    pub line: usize,
}

/// Open a pair file, decompressing `.gz`.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| data_error(&name, 0, "file", format!("cannot open: {e}")))?;
    Ok(decoded(file, path.extension().is_some_and(|e| e == "gz")))
}

/// A buffered reader over `reader`, gunzipped (every member) when `gzip` is set.
pub fn decoded<'a>(reader: impl Read + 'a, gzip: bool) -> Box<dyn BufRead + 'a> {
    let reader: Box<dyn Read + 'a> = if gzip { Box::new(flate2::read::MultiGzDecoder::new(reader)) } else { Box::new(reader) };
    Box::new(BufReader::with_capacity(1 << 16, reader))
}

/// The longest line a pair file may have. A line is held whole while it is parsed, so without a
/// cap one newline-free stream (a small .gz can inflate a thousandfold) would be read into memory
/// until the machine runs out.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Streams [`TextPair`]s from JSONL; with [`OnError::Skip`] malformed lines are counted in
/// [`PairReader::skipped`] and the first ones kept in [`PairReader::skip_messages`].
pub struct PairReader<R: BufRead> {
    source_name: String,
    reader: R,
    format: TextFormat,
    on_error: OnError,
    line_no: usize,
    buf: String,
    pub skipped: usize,
    pub skip_messages: Vec<String>,
}

impl<R: BufRead> PairReader<R> {
    pub fn new(source_name: impl Into<String>, reader: R, format: TextFormat, on_error: OnError) -> Self {
        Self { source_name: source_name.into(), reader, format, on_error, line_no: 0, buf: String::new(), skipped: 0, skip_messages: vec![] }
    }
}

impl PairReader<Box<dyn BufRead>> {
    pub fn open(path: &Path, format: TextFormat, on_error: OnError) -> Result<Self> {
        Ok(Self::new(path.display().to_string(), open(path)?, format, on_error))
    }
}

impl<R: BufRead> Iterator for PairReader<R> {
    type Item = Result<TextPair>;

    fn next(&mut self) -> Option<Result<TextPair>> {
        loop {
            self.buf.clear();
            self.line_no += 1;
            // One byte past the cap tells a line of exactly MAX_LINE_BYTES from a longer one.
            match (&mut self.reader).take(MAX_LINE_BYTES as u64 + 1).read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(n) if n > MAX_LINE_BYTES => {
                    let message = format!("the line is longer than {} MiB: not a JSONL pair file?", MAX_LINE_BYTES >> 20);
                    return Some(Err(data_error(&self.source_name, self.line_no, "line", message)));
                }
                Ok(_) => {}
                // An I/O or decompression error (e.g. a truncated .gz) is never skippable.
                Err(e) => return Some(Err(data_error(&self.source_name, self.line_no, "file", format!("cannot read: {e}")))),
            }
            let line = self.buf.trim();
            if line.is_empty() {
                continue;
            }
            match parse_pair(&self.source_name, self.line_no, line, self.format) {
                Ok(p) => return Some(Ok(p)),
                Err(e) if self.on_error == OnError::Skip => {
                    self.skipped += 1;
                    if self.skip_messages.len() < 5 {
                        self.skip_messages.push(e.to_string());
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Read every pair of a text (for small files and the page's uploads).
pub fn read_pairs_str(source_name: &str, text: &str, format: TextFormat, on_error: OnError) -> Result<(Vec<TextPair>, usize)> {
    let mut reader = PairReader::new(source_name, text.as_bytes(), format, on_error);
    let pairs = reader.by_ref().collect::<Result<Vec<_>>>()?;
    Ok((pairs, reader.skipped))
}

fn data_error(source_name: &str, line: usize, field: &str, message: impl Into<String>) -> Error {
    Error::Data { source_name: source_name.to_string(), line, field: field.to_string(), message: message.into() }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One `{role, content}` message.
#[derive(Clone, Debug, PartialEq)]
struct Message {
    role: String,
    content: String,
}

/// Parse one JSONL line in the given format.
pub fn parse_pair(source_name: &str, line_no: usize, line: &str, format: TextFormat) -> Result<TextPair> {
    let err = |field: &str, message: String| data_error(source_name, line_no, field, message);
    let v: Value = serde_json::from_str(line).map_err(|e| err("line", format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = &v else {
        return Err(err("line", format!("expected a JSON object, found {}", kind_of(&v))));
    };
    let get = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let chosen = get("chosen").ok_or_else(|| err("chosen", "missing".into()))?;
    let rejected = get("rejected").ok_or_else(|| err("rejected", "missing".into()))?;
    let prompt = get("prompt");

    let format = match format {
        TextFormat::Auto => match chosen {
            Value::Array(_) => TextFormat::Conversational,
            Value::String(s) if prompt.is_none() && s.contains("\n\nHuman:") && s.contains("\n\nAssistant:") => TextFormat::HhRlhf,
            _ => TextFormat::Standard,
        },
        f => f,
    };
    let (prompt, chosen, rejected) = match format {
        TextFormat::Standard => {
            let c = as_str(chosen).map_err(|m| err("chosen", m))?;
            let r = as_str(rejected).map_err(|m| err("rejected", m))?;
            match prompt {
                Some(p) => (as_str(p).map_err(|m| err("prompt", m))?.to_string(), c.to_string(), r.to_string()),
                None => {
                    let cut = shared_prefix(c, r);
                    (c[..cut].to_string(), c[cut..].to_string(), r[cut..].to_string())
                }
            }
        }
        TextFormat::Conversational => {
            let c = messages(chosen).map_err(|m| err("chosen", m))?;
            let r = messages(rejected).map_err(|m| err("rejected", m))?;
            match prompt {
                Some(p) => (render(&messages(p).map_err(|m| err("prompt", m))?), render(&c), render(&r)),
                None => {
                    let cut = c.iter().zip(&r).take_while(|(a, b)| a == b).count();
                    if cut == 0 {
                        return Err(err("chosen", "chosen and rejected share no leading message, so there is no implicit prompt".into()));
                    }
                    (render(&c[..cut]), render(&c[cut..]), render(&r[cut..]))
                }
            }
        }
        TextFormat::HhRlhf => {
            let c = as_str(chosen).map_err(|m| err("chosen", m))?;
            let r = as_str(rejected).map_err(|m| err("rejected", m))?;
            // TRL: the common prefix, cut back to its last Assistant marker.
            let cut = split_at_assistant(c, shared_prefix_raw(c, r)).ok_or_else(|| err("chosen", "the transcripts share no `\\n\\nAssistant:` turn to split at".into()))?;
            let strip = |t: &str| t.strip_prefix(' ').unwrap_or(t).to_string();
            (c[..cut].to_string(), strip(&c[cut..]), strip(&r[cut..]))
        }
        TextFormat::Auto => unreachable!("resolved above"),
    };
    // Empty responses are data (hh-rlhf has a few); identical ones state nothing.
    if chosen == rejected {
        return Err(err("rejected", "identical to chosen: the pair states no preference".into()));
    }

    let margin = match get("margin") {
        None => None,
        Some(Value::Number(n)) => Some(n.as_f64().filter(|x| x.is_finite()).ok_or_else(|| err("margin", format!("{n} is not a finite number")))? as f32),
        Some(v) => return Err(err("margin", format!("expected a number, found {}", kind_of(v)))),
    };
    let ratings = match (get("chosen_ratings"), get("rejected_ratings")) {
        (None, None) => None,
        (Some(c), Some(r)) => {
            let c = numbers(c).map_err(|m| err("chosen_ratings", m))?;
            let r = numbers(r).map_err(|m| err("rejected_ratings", m))?;
            if c.len() != r.len() {
                return Err(err("rejected_ratings", format!("{} ratings, but chosen_ratings has {}", r.len(), c.len())));
            }
            Some((c, r))
        }
        (Some(_), None) => return Err(err("rejected_ratings", "missing (chosen_ratings is present)".into())),
        (None, Some(_)) => return Err(err("chosen_ratings", "missing (rejected_ratings is present)".into())),
    };
    let category = match get("subset").map(|v| ("subset", v)).or_else(|| get("category").map(|v| ("category", v))) {
        None => None,
        Some((_, Value::String(s))) => Some(s.clone()),
        Some((key, v)) => return Err(err(key, format!("expected a string, found {}", kind_of(v)))),
    };
    Ok(TextPair { prompt, chosen, rejected, margin, ratings, category, line: line_no })
}

fn as_str(v: &Value) -> std::result::Result<&str, String> {
    v.as_str().ok_or_else(|| format!("expected a string, found {}", kind_of(v)))
}

fn numbers(v: &Value) -> std::result::Result<Vec<f32>, String> {
    let Value::Array(items) = v else { return Err(format!("expected a list of numbers, found {}", kind_of(v))) };
    items
        .iter()
        .enumerate()
        .map(|(i, x)| x.as_f64().filter(|x| x.is_finite()).map(|x| x as f32).ok_or_else(|| format!("item {i} is {}, not a finite number", kind_of(x))))
        .collect()
}

fn messages(v: &Value) -> std::result::Result<Vec<Message>, String> {
    let Value::Array(items) = v else { return Err(format!("expected a list of {{role, content}} messages, found {}", kind_of(v))) };
    if items.is_empty() {
        return Err("the message list is empty".into());
    }
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(Value::as_str).ok_or_else(|| format!("message {i} has no string `role`"))?;
            let content = m.get("content").and_then(Value::as_str).ok_or_else(|| format!("message {i} has no string `content`"))?;
            Ok(Message { role: role.to_string(), content: content.to_string() })
        })
        .collect()
}

/// Conversations as plain text for tokenizers without a chat template: `Role: content` blocks.
fn render(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        let mut role = m.role.clone();
        if let Some(first) = role.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        out.push_str(&role);
        out.push_str(": ");
        out.push_str(&m.content);
    }
    out
}

/// Byte length of the common prefix of two strings, on a char boundary.
fn shared_prefix_raw(a: &str, b: &str) -> usize {
    a.char_indices().zip(b.chars()).find(|((_, x), y)| x != y).map(|((i, _), _)| i).unwrap_or(a.len().min(b.len()))
}

/// TRL's `extract_prompt` on strings: the common prefix, moved back before a trailing space so
/// the responses keep their leading space.
fn shared_prefix(a: &str, b: &str) -> usize {
    let cut = shared_prefix_raw(a, b);
    if cut > 0 && a[..cut].ends_with(' ') { cut - 1 } else { cut }
}

/// The end of the last `\n\nAssistant:` marker within `t[..limit]` (the prompt keeps the marker).
fn split_at_assistant(t: &str, limit: usize) -> Option<usize> {
    const MARK: &str = "\n\nAssistant:";
    t[..limit].rfind(MARK).map(|i| i + MARK.len())
}

/// Carry the pairs' source lines (they decide the held-out split), response lengths (for the eval
/// report's length buckets), margins (as strengths, TRL's
/// `margin`) and per-attribute ratings (per item) into `ds`, whose pairs are `pairs` in order (as
/// `prefscope embed` writes them). A pair without
/// a margin counts 0 when others have one (TRL's default); ratings must be on every pair with one
/// width, since none can be made up. An item rated differently in two pairs keeps its first rating.
pub fn carry_labels(source_name: &str, pairs: &[TextPair], ds: &mut crate::PairDataset) -> Result<()> {
    ds.source_lines = pairs.iter().map(|p| p.line).collect();
    ds.response_lengths = pairs.iter().map(|p| (p.chosen.chars().count(), p.rejected.chars().count())).collect();
    if pairs.iter().any(|p| p.margin.is_some()) {
        ds.strengths = pairs.iter().map(|p| p.margin.unwrap_or(0.0)).collect();
    }
    let Some(first) = pairs.iter().find_map(|p| p.ratings.as_ref()) else { return Ok(()) };
    let k = first.0.len();
    let mut ratings: Vec<Option<&[f32]>> = vec![None; ds.n_items()];
    for (p, &(c, r)) in pairs.iter().zip(&ds.pairs) {
        let Some((rc, rr)) = &p.ratings else {
            return Err(data_error(source_name, p.line, "chosen_ratings", "missing here but present on other lines: a rated file needs ratings on every pair"));
        };
        if rc.len() != k || rr.len() != k {
            return Err(data_error(source_name, p.line, "chosen_ratings", format!("{} and {} ratings where the first rated pair has {k}", rc.len(), rr.len())));
        }
        ratings[c].get_or_insert(rc);
        ratings[r].get_or_insert(rr);
    }
    ds.ratings = ratings.into_iter().flat_map(|r| r.expect("every item is in a pair").iter().copied()).collect();
    ds.n_objectives = k;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<TextPair> {
        parse_pair("pairs.jsonl", 7, line, TextFormat::Auto)
    }

    #[test]
    fn standard_explicit_and_implicit_prompts() {
        let p = one(r#"{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}"#).unwrap();
        assert_eq!((p.prompt.as_str(), p.chosen.as_str(), p.rejected.as_str()), ("The sky is", " blue.", " green."));
        // TRL's implicit-prompt example gives the same split.
        let q = one(r#"{"chosen": "The sky is blue.", "rejected": "The sky is green."}"#).unwrap();
        assert_eq!((q.prompt.as_str(), q.chosen.as_str(), q.rejected.as_str()), ("The sky is", " blue.", " green."));
        let m = one(r#"{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 2.5, "subset": "chat", "chosen_ratings": [4, 3], "rejected_ratings": [1, 2]}"#).unwrap();
        assert_eq!(m.margin, Some(2.5));
        assert_eq!(m.category.as_deref(), Some("chat"));
        assert_eq!(m.ratings, Some((vec![4.0, 3.0], vec![1.0, 2.0])));
        assert_eq!(m.line, 7);
    }

    #[test]
    fn conversational_explicit_and_implicit() {
        let explicit = r#"{"prompt": [{"role": "user", "content": "What color is the sky?"}], "chosen": [{"role": "assistant", "content": "Blue."}], "rejected": [{"role": "assistant", "content": "Green."}]}"#;
        let implicit = r#"{"chosen": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "Blue."}], "rejected": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "Green."}]}"#;
        let a = one(explicit).unwrap();
        let b = one(implicit).unwrap();
        assert_eq!(a.prompt, "User: What color is the sky?");
        assert_eq!(a.chosen, "Assistant: Blue.");
        assert_eq!((a.prompt, a.chosen, a.rejected), (b.prompt, b.chosen, b.rejected));
    }

    #[test]
    fn hh_rlhf_splits_at_the_last_assistant_turn() {
        let line = serde_json::json!({
            "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: Why did the chicken cross the road?",
            "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: No."
        })
        .to_string();
        let p = one(&line).unwrap();
        assert_eq!(p.prompt, "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant:");
        assert_eq!(p.chosen, "Why did the chicken cross the road?");
        assert_eq!(p.rejected, "No.");
        // Re-joining gives the transcripts back.
        assert_eq!(format!("{} {}", p.prompt, p.chosen), serde_json::from_str::<Value>(&line).unwrap()["chosen"]);
    }

    #[test]
    fn the_shared_files_read_in_full() {
        let hh = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/hh-rlhf-harmless-base-a.jsonl.gz");
        let mut reader = PairReader::open(&hh, TextFormat::Auto, OnError::Skip).unwrap();
        let pairs: Vec<TextPair> = reader.by_ref().collect::<Result<_>>().unwrap();
        assert_eq!((pairs.len(), reader.skipped), (1185, 0), "{:?}", reader.skip_messages);
        assert!(pairs.iter().all(|p| p.prompt.ends_with("\n\nAssistant:") && p.prompt.starts_with("\n\nHuman:")));
        // Three pairs diverge before their last turn: as in TRL, the prompt stops at the last
        // shared Assistant marker and the responses carry the rest of their dialogue.
        let multi_turn: Vec<usize> = pairs.iter().filter(|p| p.chosen.contains("\n\nAssistant:") || p.rejected.contains("\n\nAssistant:")).map(|p| p.line).collect();
        assert_eq!(multi_turn, [650, 872, 1050]);

        let conv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/gpm_test_data.jsonl");
        let pairs: Vec<TextPair> = PairReader::open(&conv, TextFormat::Auto, OnError::Stop).unwrap().collect::<Result<_>>().unwrap();
        assert_eq!(pairs.len(), 10);
        assert!(pairs.iter().all(|p| p.prompt.starts_with("User: ") && p.chosen.starts_with("Assistant: ")));
    }

    #[test]
    fn gzip_and_plain_read_the_same() {
        use std::io::Write;
        let text = "{\"chosen\": \"ab\", \"rejected\": \"ac\"}\n\n{\"prompt\": \"q\", \"chosen\": \"x\", \"rejected\": \"y\"}";
        let dir = std::env::temp_dir().join(format!("prefscope-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut gz = flate2::write::GzEncoder::new(File::create(dir.join("p.jsonl.gz")).unwrap(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap();
        let from_gz: Vec<TextPair> = PairReader::open(&dir.join("p.jsonl.gz"), TextFormat::Auto, OnError::Stop).unwrap().collect::<Result<_>>().unwrap();
        let (plain, skipped) = read_pairs_str("p.jsonl", text, TextFormat::Auto, OnError::Stop).unwrap();
        assert_eq!((from_gz.clone(), 0), (plain, skipped));
        assert_eq!(from_gz[1].line, 3, "blank lines still count");
        // A truncated archive is an error naming the file, never a silently shorter dataset.
        let bytes = std::fs::read(dir.join("p.jsonl.gz")).unwrap();
        std::fs::write(dir.join("cut.jsonl.gz"), &bytes[..bytes.len() / 2]).unwrap();
        let r: Result<Vec<TextPair>> = PairReader::open(&dir.join("cut.jsonl.gz"), TextFormat::Auto, OnError::Skip).unwrap().collect();
        assert!(r.unwrap_err().to_string().contains("cut.jsonl.gz"));
    }

    /// Each malformed line with the exact message a user sees.
    #[test]
    fn malformed_lines_name_file_line_and_field() {
        let corpus: &[(&str, &str)] = &[
            ("{\"chosen\": \"a\"", "pairs.jsonl:7: line: not valid JSON: EOF while parsing an object at line 1 column 14"),
            ("[1, 2]", "pairs.jsonl:7: line: expected a JSON object, found a list"),
            ("{\"rejected\": \"b\"}", "pairs.jsonl:7: chosen: missing"),
            ("{\"chosen\": \"a\"}", "pairs.jsonl:7: rejected: missing"),
            ("{\"chosen\": 3, \"rejected\": \"b\"}", "pairs.jsonl:7: chosen: expected a string, found a number"),
            ("{\"prompt\": [], \"chosen\": \"a\", \"rejected\": \"b\"}", "pairs.jsonl:7: prompt: expected a string, found a list"),
            ("{\"chosen\": [{\"role\": \"user\"}], \"rejected\": []}", "pairs.jsonl:7: chosen: message 0 has no string `content`"),
            ("{\"chosen\": [{\"role\": \"user\", \"content\": \"x\"}], \"rejected\": \"b\"}", "pairs.jsonl:7: rejected: expected a list of {role, content} messages, found a string"),
            ("{\"chosen\": \"same\", \"rejected\": \"same\"}", "pairs.jsonl:7: rejected: identical to chosen: the pair states no preference"),
            ("{\"prompt\": \"p\", \"chosen\": \"same\", \"rejected\": \"same\"}", "pairs.jsonl:7: rejected: identical to chosen: the pair states no preference"),
            ("{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"margin\": \"big\"}", "pairs.jsonl:7: margin: expected a number, found a string"),
            ("{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"chosen_ratings\": [1]}", "pairs.jsonl:7: rejected_ratings: missing (chosen_ratings is present)"),
            ("{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"chosen_ratings\": [1, 2], \"rejected_ratings\": [1]}", "pairs.jsonl:7: rejected_ratings: 1 ratings, but chosen_ratings has 2"),
            ("{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"chosen_ratings\": [1, null], \"rejected_ratings\": [1, 2]}", "pairs.jsonl:7: chosen_ratings: item 1 is null, not a finite number"),
            ("{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"subset\": 4}", "pairs.jsonl:7: subset: expected a string, found a number"),
            ("{\"chosen\": \"\\n\\nHuman: hi\\n\\nAssistant: a\", \"rejected\": \"\\n\\nHuman: yo\\n\\nAssistant: b\"}", "pairs.jsonl:7: chosen: the transcripts share no `\\n\\nAssistant:` turn to split at"),
        ];
        for (line, want) in corpus {
            assert_eq!(one(line).unwrap_err().to_string(), *want, "{line}");
        }
        // Skip mode counts them all and keeps going; stop mode stops at the first.
        let text = corpus.iter().map(|(l, _)| *l).chain(["{\"chosen\": \"ok1\", \"rejected\": \"ok2\"}"]).collect::<Vec<_>>().join("\n");
        let (pairs, skipped) = read_pairs_str("pairs.jsonl", &text, TextFormat::Auto, OnError::Skip).unwrap();
        assert_eq!((pairs.len(), skipped), (1, corpus.len()));
        assert_eq!(pairs[0].line, corpus.len() + 1);
        let e = read_pairs_str("pairs.jsonl", &text, TextFormat::Auto, OnError::Stop).unwrap_err().to_string();
        assert!(e.starts_with("pairs.jsonl:1: line:"), "{e}");
    }

    #[test]
    fn margins_and_ratings_carry_onto_the_embedded_items() {
        let pair = |chosen: &str, rejected: &str, margin: Option<f32>, ratings: Option<(Vec<f32>, Vec<f32>)>, line: usize| TextPair {
            prompt: "p".into(),
            chosen: chosen.into(),
            rejected: rejected.into(),
            margin,
            ratings,
            category: None,
            line,
        };
        let rated = |c: [f32; 2], r: [f32; 2]| Some((c.to_vec(), r.to_vec()));
        let pairs = vec![pair("a", "b", Some(2.0), rated([1.0, 2.0], [3.0, 4.0]), 1), pair("c", "a", None, rated([5.0, 6.0], [9.0, 9.0]), 2)];
        // Items as the encoder numbers them: a = 0, b = 1, c = 2.
        let mut ds = crate::PairDataset { dim: 1, items: vec![0.0, 1.0, 2.0], pairs: vec![(0, 1), (2, 0)], ..Default::default() };
        carry_labels("f.jsonl", &pairs, &mut ds).unwrap();
        assert_eq!(ds.source_lines, [1, 2]);
        assert_eq!(ds.response_lengths, [(1, 1), (1, 1)]);
        assert_eq!(ds.strengths, [2.0, 0.0], "a pair without a margin counts 0");
        assert_eq!((ds.n_objectives, ds.ratings.as_slice()), (2, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0].as_slice()), "item a keeps its first rating");

        let mut bad = pairs.clone();
        bad[1].ratings = None;
        let e = carry_labels("f.jsonl", &bad, &mut ds.clone()).unwrap_err().to_string();
        assert!(e.starts_with("f.jsonl:2: chosen_ratings: missing here"), "{e}");
        bad[1].ratings = Some((vec![1.0], vec![2.0]));
        let e = carry_labels("f.jsonl", &bad, &mut ds.clone()).unwrap_err().to_string();
        assert!(e.contains("f.jsonl:2: chosen_ratings: 1 and 1 ratings where the first rated pair has 2"), "{e}");
    }

    #[test]
    fn a_gzipped_line_longer_than_the_cap_is_refused_by_line() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"chosen\": \"a\", \"rejected\": \"b\"}\n").unwrap();
        gz.write_all(&vec![b'x'; MAX_LINE_BYTES + 1]).unwrap();
        let bytes = gz.finish().unwrap();
        let mut reader = PairReader::new("bomb.jsonl.gz", decoded(&bytes[..], true), TextFormat::Auto, OnError::Skip);
        assert!(reader.next().unwrap().is_ok());
        let e = reader.next().unwrap().err().expect("refused").to_string();
        assert!(e.starts_with("bomb.jsonl.gz:2: line:") && e.contains("longer than 64 MiB"), "{e}");
    }
}
