//! The repository is self-contained: no tracked file names a path outside it. A clone is all a
//! user has, so a test, demo or script that reads beside the checkout (a sibling folder, a
//! developer's home) works only on the machine it was written on.

/// The paths in `text` (the contents of the tracked file `file`, relative to the repository root)
/// that leave the repository: a run of `../` that climbs above the root from the file's own
/// folder, a sibling `shared/` folder, or an absolute path into a home or work folder.
pub fn leaving(file: &str, text: &str) -> Vec<String> {
    let depth = file.matches('/').count();
    let mut found = vec![];
    for (n, line) in text.lines().enumerate() {
        let at = |what: String| format!("{file}:{}: {what}", n + 1);
        // A path joined to CARGO_MANIFEST_DIR climbs from the crate's folder (at most two deep
        // here: crates/<name>), wherever the file that says so lives (tests/cli.rs is the CLI's).
        let allowed = if line.contains("CARGO_MANIFEST_DIR") { depth.max(2) } else { depth };
        let mut rest = line;
        while let Some(i) = rest.find("../") {
            let ups = rest[i..].as_bytes().chunks(3).take_while(|c| *c == b"../").count();
            let after = &rest[i + 3 * ups..];
            if ups > allowed || after.starts_with("shared/") {
                found.push(at(format!("{}{}", "../".repeat(ups), after.split(|c: char| c.is_whitespace() || "\"'`)]>,;".contains(c)).next().unwrap_or(""))));
            }
            rest = &rest[i + 3 * ups..];
        }
        for absolute in ["/work/", "/home/", "/root/"] {
            if line.contains(absolute) {
                found.push(at(format!("an absolute path ({absolute}…)")));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_inside_the_repository_pass_and_the_others_are_named() {
        // crates/prefscope-core/src → two levels up is crates/, three is the root.
        let file = "crates/prefscope-core/src/text.rs";
        assert!(leaving(file, r#"concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/x.jsonl")"#).is_empty());
        assert_eq!(leaving(file, r#"let p = "../../../../data.csv";"#), vec![format!("{file}:1: ../../../../data.csv")]);
        assert!(leaving("tests/cli.rs", r#"Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")"#).is_empty());
        assert_eq!(leaving("tests/cli.rs", r#"Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../x")"#).len(), 1);
        // The sibling folder's name is put together here, so that this file never names it.
        let sibling = ["sha", "red"].concat();
        assert_eq!(leaving(file, &format!("\n// see ../{sibling}/notes.md")).len(), 1);
        assert_eq!(leaving("README.md", "cat ../x"), vec!["README.md:1: ../x".to_string()]);
        assert_eq!(leaving("scripts/a.sh", "cp /root/.cache/m ."), vec!["scripts/a.sh:1: an absolute path (/root/…)".to_string()]);
    }

    #[test]
    fn no_tracked_file_names_a_path_outside_the_repository() {
        let root = crate::root();
        let out = std::process::Command::new("git").args(["ls-files", "-z"]).current_dir(&root).output().expect("git ls-files");
        assert!(out.status.success(), "git ls-files failed");
        let files: Vec<String> = String::from_utf8_lossy(&out.stdout).split('\0').filter(|f| !f.is_empty()).map(str::to_string).collect();
        assert!(files.len() > 50, "{} tracked files", files.len());
        let mut found = vec![];
        for f in &files {
            // Binary files (models, gzip, images) hold no paths that code follows.
            let Ok(text) = std::fs::read_to_string(root.join(f)) else { continue };
            // This file spells out the absolute patterns it looks for.
            if f != "xtask/src/selfcontained.rs" {
                found.extend(leaving(f, &text));
            }
        }
        assert!(found.is_empty(), "paths that leave the repository:\n{}", found.join("\n"));
    }
}
