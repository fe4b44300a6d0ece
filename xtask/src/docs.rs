//! `cargo xtask docs`: the book under docs/ built with mdBook, and every relative link in it and in
//! the README checked: the file exists, and an `#anchor` into a Markdown page names one of its
//! headings. mdBook itself only warns about a missing chapter, never about a broken link.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// mdBook's release line the book is written for (its SUMMARY and book.toml formats).
const MDBOOK_VERSION: &str = "0.4";

pub fn setup_mdbook() -> Result<()> {
    if crate::output_of("mdbook", &["--version"]).is_some_and(|v| v.trim_start_matches("mdbook v").starts_with(MDBOOK_VERSION)) {
        return Ok(());
    }
    eprintln!("installing mdBook {MDBOOK_VERSION}.x (cargo install mdbook)");
    crate::run(Command::new("cargo").args(["install", "mdbook", "--locked", "--version", &format!("^{MDBOOK_VERSION}")]))
}

/// Build the book into target/book and check its links and the README's.
pub fn build(root: &Path) -> Result<()> {
    setup_mdbook()?;
    crate::run(Command::new("mdbook").args(["build", "docs"]).current_dir(root))?;
    let broken = check_links(root)?;
    if !broken.is_empty() {
        bail!("{} broken link(s):\n  {}", broken.len(), broken.join("\n  "));
    }
    eprintln!("the book is in {}", root.join("target/book/index.html").display());
    Ok(())
}

/// The page's screenshots that the README and the book show: (what the browser suite writes in
/// tests/out/browser, its name in docs/figures).
const FIGURES: [(&str, &str); 8] = [
    ("cpu-cyclic-gpm-top.png", "playground.png"),
    ("landscape-random.png", "playground-landscape.png"),
    ("direction-dial.png", "playground-dial.png"),
    ("gpm-embedding.png", "playground-gpm-embedding.png"),
    ("policy-objectives.png", "playground-policy.png"),
    ("policy-online.png", "playground-overoptimisation.png"),
    ("policy-modpo.png", "playground-modpo-pareto.png"),
    ("profiles.png", "playground-community-profiles.png"),
];

/// `cargo xtask figures`, after the browser suite: its screenshots into docs/figures.
pub fn copy_figures(root: &Path) -> Result<()> {
    for (from, to) in FIGURES {
        let (from, to) = (root.join("tests/out/browser").join(from), root.join("docs/figures").join(to));
        std::fs::copy(&from, &to).with_context(|| format!("{} -> {}", from.display(), to.display()))?;
        eprintln!("{}", to.display());
    }
    Ok(())
}

/// Every Markdown file under docs/, and the README.
fn pages(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![root.join("README.md")];
    let mut stack = vec![root.join("docs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The link targets of a Markdown text: `[text](target)` and `![alt](target)`, outside code.
pub fn link_targets(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Inline code spans hold examples, not links.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("").to_string();
            if !target.is_empty() {
                out.push(target);
            }
            rest = &after[end..];
        }
    }
    out
}

/// mdBook's anchor for a heading: lower case, spaces to `-`, other punctuation dropped.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_fence = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// "file: target (why)" for each relative link that leads nowhere, and each page missing from
/// SUMMARY.md.
pub fn check_links(root: &Path) -> Result<Vec<String>> {
    let mut broken = vec![];
    let summary = std::fs::read_to_string(root.join("docs/SUMMARY.md")).context("docs/SUMMARY.md")?;
    let listed: BTreeSet<String> = link_targets(&summary).into_iter().collect();
    for page in pages(root)? {
        let text = std::fs::read_to_string(&page)?;
        let name = page.strip_prefix(root).unwrap_or(&page).display().to_string();
        if let Ok(in_book) = page.strip_prefix(root.join("docs")) {
            let rel = in_book.display().to_string();
            if rel != "SUMMARY.md" && !listed.contains(&rel) {
                broken.push(format!("{name}: not listed in docs/SUMMARY.md"));
            }
        }
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let dest = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            if !dest.exists() {
                broken.push(format!("{name}: {target} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor
                && dest.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&dest)?).contains(anchor)
            {
                broken.push(format!("{name}: {target} (no heading with that anchor)"));
            }
        }
    }
    Ok(broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_outside_code_are_found_and_slugs_follow_mdbook() {
        let text = "See [a](a.md#two-words) and ![f](fig.png \"t\").\n`[x](not-a-link)`\n```sh\n[y](nor-this)\n```\n";
        assert_eq!(link_targets(text), ["a.md#two-words", "fig.png"]);
        assert_eq!(slug(" Two words: DPA (v2)"), "two-words-dpa-v2");
    }

    #[test]
    fn the_book_and_readme_have_no_broken_link() {
        let root = crate::root();
        let broken = check_links(&root).unwrap();
        assert!(broken.is_empty(), "{}", broken.join("\n"));
    }

    #[test]
    fn a_broken_link_and_an_unlisted_page_are_named() {
        let dir = std::env::temp_dir().join(format!("xtask-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(dir.join("README.md"), "[book](docs/SUMMARY.md) [gone](docs/gone.md) [bad](docs/a.md#nope)\n").unwrap();
        std::fs::write(dir.join("docs/SUMMARY.md"), "- [A](a.md)\n").unwrap();
        std::fs::write(dir.join("docs/a.md"), "# A\n").unwrap();
        std::fs::write(dir.join("docs/b.md"), "# B\n").unwrap();
        let broken = check_links(&dir).unwrap();
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert!(broken.iter().any(|b| b.contains("gone.md (no such file)")));
        assert!(broken.iter().any(|b| b.contains("#nope (no heading")));
        assert!(broken.iter().any(|b| b.contains("docs/b.md: not listed")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
