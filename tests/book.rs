//! Every example in the README and the book runs. Each page's ```sh blocks that call `prefscope`
//! run in order, in one scratch folder per page (later blocks use the runs of earlier ones), with
//! `prefscope` on the PATH. A small wrapper runs them at small settings, so the docs cannot go
//! stale without the suite taking minutes: a `--seeds` list keeps its first two seeds (`overopt`
//! and a sweep without `--seeds`: one); `--steps` is capped at 50 for `train`, `sweep` and
//! `align` (10 for a text run, 3 for `bench`; a `--steps` of 10,000 or more is the resume
//! example's long run, cut to 6,000 steps, still past its kill); a `--config` file is read from a copy (in the scratch folder) with at most 2 epochs
//! and 50 steps; a text run
//! from scratch uses `--preset small`; `overopt` draws 1,024 candidates; the tiny LM runs 50 SFT
//! steps, 10 online iterations and `overopt`'s RL at β = 1 and 0.01; the bandit's online runs 20
//! iterations (an `--iterations` above 20 is cut to 20); and the hh-rlhf sample is cut to its
//! first 60 pairs. Lines that install (`cargo …`) are skipped: the binary under test
//! is already built.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The hh-rlhf sample file, cut short for the examples.
const HH: &str = "hh-rlhf-harmless-base-a.jsonl.gz";

const WRAPPER: &str = r#"#!/usr/bin/env bash
# The book's examples at small settings (see tests/book.rs).
sub="${1:-}"
args=()
prev=""
has() { [[ " ${args[*]} " == *" $1 "* ]]; }
# A text run (a pair file given with --data), wherever the flag stands.
text=0; [[ " $* " == *" --data "* ]] && text=1
for a in "$@"; do
  case "$prev" in
    --seeds) first="${a%%[.,]*}"
             case "$sub:$a" in
               overopt:*) a="$first" ;;
               *..*) last="${a#*..}"; last="${last%%,*}"; if [ "$last" -gt "$first" ]; then a="$first..$((first + 1))"; fi ;;
               *,*) rest="${a#*,}"; a="$first,${rest%%,*}" ;;
             esac ;;
    --steps) case "$sub" in train|sweep|align|bench) cap=50; [ "$sub" = bench ] && cap=3; [ $text = 1 ] && cap=10
                                                 if [ "$a" -lt 10000 ] && [ "$a" -gt "$cap" ]; then a=$cap; fi ;; esac ;;
    --iterations) if [ "$sub" = align ] && [ "$a" -gt 20 ]; then a=20; fi ;;
    --config) case "$sub" in train|sweep)
                # A copy with at most 2 epochs and 50 steps, in the example's scratch folder
                # (bench/ there is the repository's own).
                small="$(basename "${a%.toml}").small.toml"
                sed -E 's/^(epochs *= *).*/\12/; s/^(steps *= *)([0-9]{3,})$/\150/' "$a" > "$small" && a="$small" ;; esac ;;
  esac
  args+=("$a")
  prev="$a"
done
# The resume example's long run is killed by its block: the binary itself, not this script, at
# 6,000 steps (about twice the block's 3 s sleep here), so its `--resume` finishes in seconds.
for i in "${!args[@]}"; do a="${args[$i]}"; if [[ "$a" =~ ^[0-9]+$ ]] && [ "$a" -ge 10000 ]; then args[$i]=6000; exec "$PREFSCOPE_REAL" "${args[@]}"; fi; done
case "$sub" in
  train|sweep|align)
    if ! has --steps && ! has --resume && ! has --online && ! has --config; then
      if [ $text = 1 ]; then args+=(--steps 10); else args+=(--steps 50); fi
    fi
    # A text run from scratch: the small transformer.
    if [ "$sub" = train ] && has --data && ! has --preset && ! has --config && ! has --resume; then args+=(--preset small); fi
    if [ "$sub" = sweep ] && ! has --seeds; then args+=(--seeds 0..0); fi ;;
  overopt) has --candidates || has --items || args+=(--candidates 1024) ;;
esac
# The tiny LM: 50 SFT steps (of 600), 10 online iterations (of 40), overopt's RL at two β (of 5).
if [[ "$sub" =~ ^(align|overopt)$ ]] && has lm; then
  has --sft-steps || args+=(--sft-steps 50)
  if [ "$sub" = overopt ] && ! has --betas; then args+=(--betas 1 0.01); fi
  if [ "$sub" = align ] && has --online && ! has --iterations; then args+=(--iterations 10); fi
fi
# The bandit's online runs: 20 rounds (of 300 by default).
if [ "$sub" = align ] && has --online && ! has --iterations; then args+=(--iterations 20); fi
case "$sub" in
  bench) has --steps || args+=(--steps 3); has --warmup || args+=(--warmup 1) ;;
esac
"$PREFSCOPE_REAL" "${args[@]}"
code=$?
if [ $code -ne 0 ]; then echo "exit $code: prefscope ${args[*]}" >> "$PREFSCOPE_FAILURES"; fi
exit $code
"#;

/// The ```sh blocks of a Markdown text that call `prefscope`, with the line each starts on.
fn examples(text: &str) -> Vec<(usize, String)> {
    let mut out = vec![];
    let mut block: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut block {
            None if line.trim_start() == "```sh" => block = Some((i + 1, String::new())),
            Some((start, body)) if line.trim_start() == "```" => {
                if body.lines().any(|l| l.trim_start().starts_with("prefscope ")) {
                    out.push((*start, std::mem::take(body)));
                }
                block = None;
            }
            Some((_, body)) => {
                // Installs are skipped: the binary under test is already built.
                if !line.trim_start().starts_with("cargo ") {
                    body.push_str(line);
                    body.push('\n');
                }
            }
            None => {}
        }
    }
    out
}

fn pages() -> Vec<PathBuf> {
    let mut out = vec![repo().join("README.md")];
    let mut stack = vec![repo().join("docs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_example_extractor_keeps_prefscope_blocks_and_skips_installs() {
    let md = "```sh\ncargo install --path x\nprefscope train --out a\n```\n```sh\nls\n```\n```text\nprefscope nope\n```\n";
    assert_eq!(examples(md), [(1, "prefscope train --out a\n".to_string())]);
}

#[test]
fn every_example_in_the_readme_and_the_book_runs() {
    let root = std::env::temp_dir().join(format!("prefscope-book-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("prefscope"), WRAPPER).unwrap();
    Command::new("chmod").arg("+x").arg(bin.join("prefscope")).status().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let failures_log = root.join("failures.txt");

    let mut failures = vec![];
    let mut times: Vec<(f64, String)> = vec![];
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let blocks = examples(&text);
        if blocks.is_empty() {
            continue;
        }
        let name = page.strip_prefix(repo()).unwrap().display().to_string();
        let dir = root.join(name.replace('/', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        // The examples name the repository's sample files and configs by relative path. The
        // hh-rlhf sample is cut to its first 60 pairs: embedding all 1,185 with MiniLM takes
        // minutes, and every command of a page (and its TOML files) then reads the same cut.
        std::os::unix::fs::symlink(repo().join("bench"), dir.join("bench")).unwrap();
        std::fs::create_dir_all(dir.join("tests/data")).unwrap();
        for entry in std::fs::read_dir(repo().join("tests/data")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_owned();
            if name == HH {
                let cut = format!("zcat {:?} | head -n 60 | gzip -n > {:?}", path, dir.join("tests/data").join(HH));
                assert!(Command::new("bash").arg("-c").arg(cut).status().unwrap().success());
            } else {
                std::os::unix::fs::symlink(&path, dir.join("tests/data").join(name)).unwrap();
            }
        }
        for (line, body) in blocks {
            let _ = std::fs::remove_file(&failures_log);
            let started = std::time::Instant::now();
            let out = Command::new("bash")
                .arg("-c")
                .arg(&body)
                .current_dir(&dir)
                .env("PATH", &path)
                .env("PREFSCOPE_REAL", env!("CARGO_BIN_EXE_prefscope"))
                .env("PREFSCOPE_FAILURES", &failures_log)
                .output()
                .unwrap();
            let secs = started.elapsed().as_secs_f64();
            eprintln!("{name}:{line}: {secs:.1} s");
            times.push((secs, format!("{name}:{line}")));
            let failed = std::fs::read_to_string(&failures_log).unwrap_or_default();
            if !failed.is_empty() {
                failures.push(format!("{name}:{line}:\n{failed}{}", String::from_utf8_lossy(&out.stderr)));
            }
        }
    }
    // The slowest blocks, which CI's log shows (nextest prints this test's output on success):
    // where to look first when the examples' share of the time grows.
    let ran = times.len();
    times.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total: f64 = times.iter().map(|t| t.0).sum();
    eprintln!("{ran} example blocks in {total:.0} s; the slowest:");
    for (secs, at) in times.iter().take(10) {
        eprintln!("{secs:8.1} s  {at}");
    }
    assert!(ran >= 30, "only {ran} example blocks found");
    assert!(failures.is_empty(), "{} example block(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
    let _ = std::fs::remove_dir_all(&root);
}
