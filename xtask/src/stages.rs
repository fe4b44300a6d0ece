//! The wall time of each stage of `cargo xtask test`, and the native tests' own timings read
//! from nextest's JUnit report: printed as tables at the end of the run (also when it fails), and
//! written to `tests/out/test-stages.md` so a CI log's figures can be pasted into the docs.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Result;

/// How many of the slowest tests the report lists.
const SLOWEST: usize = 15;

pub struct Stages {
    start: Instant,
    /// (name, wall seconds, cores busy on average, succeeded).
    rows: Vec<(String, f64, Option<f64>, bool)>,
    notes: Vec<String>,
    report: Option<TestReport>,
}

impl Stages {
    pub fn new() -> Self {
        Self { start: Instant::now(), rows: vec![], notes: vec![], report: None }
    }

    /// Run one stage and record its wall time, whether or not it succeeds.
    pub fn time<T>(&mut self, name: &str, stage: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("== {name}");
        let (t, ticks) = (Instant::now(), cpu_ticks());
        let out = stage();
        let busy = ticks.zip(cpu_ticks()).and_then(|(a, b)| cores_busy(a, b));
        self.rows.push((name.to_string(), t.elapsed().as_secs_f64(), busy, out.is_ok()));
        out
    }

    /// A line under the table, for work that overlapped the stages above.
    pub fn note(&mut self, line: &str) {
        self.notes.push(line.to_string());
    }

    pub fn add_report(&mut self, report: TestReport) {
        self.report = Some(report);
    }

    pub fn total(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The tables, as Markdown, on stderr and in tests/out/test-stages.md.
    pub fn print(&self, passed: bool) {
        let mut md = String::new();
        let _ = writeln!(md, "| stage | seconds | cores busy |\n|---|---:|---:|");
        for (name, secs, busy, ok) in &self.rows {
            let busy = busy.map_or("–".to_string(), |b| format!("{b:.2}"));
            let _ = writeln!(md, "| {name}{} | {secs:.0} | {busy} |", if *ok { "" } else { " (FAILED)" });
        }
        let _ = writeln!(md, "| **total**{} | **{:.0}** | of {} |", if passed { "" } else { " (failed)" }, self.total(), cores());
        for note in &self.notes {
            let _ = writeln!(md, "\n{note}");
        }
        if let Some(report) = &self.report {
            md.push('\n');
            md.push_str(&report.to_markdown());
        }
        eprintln!("\n{md}");
        let out = super::root().join("tests/out");
        if std::fs::create_dir_all(&out).is_ok() {
            let _ = std::fs::write(out.join("test-stages.md"), &md);
        }
    }
}

/// (busy, all) clock ticks summed over every CPU, from the first line of /proc/stat (Linux):
/// busy is all but idle and iowait. None elsewhere.
fn cpu_ticks() -> Option<(u64, u64)> {
    parse_cpu_line(std::fs::read_to_string("/proc/stat").ok()?.lines().next()?)
}

fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let v: Vec<u64> = fields.take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let all: u64 = v.iter().sum();
    Some((all - v.get(3)? - v.get(4)?, all))
}

/// The machine's cores kept busy on average between two readings: busy share × cores. A stage
/// well under the core count left CPU idle that another stage could have used.
fn cores_busy((busy0, all0): (u64, u64), (busy1, all1): (u64, u64)) -> Option<f64> {
    let all = all1.checked_sub(all0).filter(|&d| d > 0)?;
    Some(busy1.saturating_sub(busy0) as f64 / all as f64 * cores() as f64)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One test case from the JUnit report.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The test binary (nextest's `classname`: the crate, or `crate::test-target`).
    pub binary: String,
    pub name: String,
    pub seconds: f64,
    pub failed: bool,
}

#[derive(Debug, Default)]
pub struct TestReport {
    pub cases: Vec<Case>,
}

/// The value of attribute `key` in one XML start tag, unescaped.
fn attr(tag: &str, key: &str) -> Option<String> {
    let needle = format!(" {key}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(tag[start..end].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&"))
}

impl TestReport {
    /// Read nextest's JUnit XML: each `<testcase>` names its binary (`classname`), its test and
    /// its time; a case with a `<failure>` or `<error>` child failed.
    pub fn from_junit(xml: &str) -> Self {
        let mut cases = vec![];
        let mut rest = xml;
        while let Some(i) = rest.find("<testcase ") {
            rest = &rest[i..];
            let tag_end = rest.find('>').unwrap_or(rest.len());
            let tag = &rest[..tag_end];
            let self_closing = tag.ends_with('/');
            let body_end = if self_closing { tag_end } else { rest.find("</testcase>").unwrap_or(rest.len()) };
            let body = &rest[tag_end..body_end];
            if let (Some(binary), Some(name)) = (attr(tag, "classname"), attr(tag, "name")) {
                let seconds = attr(tag, "time").and_then(|t| t.parse().ok()).unwrap_or(0.0);
                let failed = body.contains("<failure") || body.contains("<error");
                cases.push(Case { binary, name, seconds, failed });
            }
            rest = &rest[body_end.max(1)..];
        }
        Self { cases }
    }

    /// Per binary: tests, failures and summed test time; then the slowest tests.
    pub fn to_markdown(&self) -> String {
        let mut binaries: Vec<(String, usize, usize, f64)> = vec![];
        for c in &self.cases {
            match binaries.iter_mut().find(|b| b.0 == c.binary) {
                Some(b) => {
                    b.1 += 1;
                    b.2 += c.failed as usize;
                    b.3 += c.seconds;
                }
                None => binaries.push((c.binary.clone(), 1, c.failed as usize, c.seconds)),
            }
        }
        binaries.sort_by(|a, b| b.3.total_cmp(&a.3));
        let mut md = String::from("| test binary | tests | failed | test-seconds (summed) |\n|---|---:|---:|---:|\n");
        for (name, n, failed, secs) in &binaries {
            let _ = writeln!(md, "| {name} | {n} | {failed} | {secs:.0} |");
        }
        let total: f64 = self.cases.iter().map(|c| c.seconds).sum();
        let _ = writeln!(md, "| **all** | **{}** | **{}** | **{total:.0}** |", self.cases.len(), self.cases.iter().filter(|c| c.failed).count());
        let mut slow: Vec<&Case> = self.cases.iter().collect();
        slow.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        let _ = writeln!(md, "\n| {} slowest tests | binary | seconds |\n|---|---|---:|", SLOWEST.min(slow.len()));
        for c in slow.iter().take(SLOWEST) {
            let _ = writeln!(md, "| `{}`{} | {} | {:.1} |", c.name, if c.failed { " (FAILED)" } else { "" }, c.binary, c.seconds);
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="1" errors="0" uuid="x" timestamp="t" time="9.5">
    <testsuite name="prefscope-core" tests="2" disabled="0" errors="0" failures="1">
        <testcase name="train::tests::claim_a" classname="prefscope-core" timestamp="t" time="7.25">
            <failure type="test failure">thread panicked</failure>
            <system-err>seed 3 &amp; more</system-err>
        </testcase>
        <testcase name="loss::tests::grad_&lt;f64&gt;" classname="prefscope-core" timestamp="t" time="0.5"/>
    </testsuite>
    <testsuite name="prefscope-cli::cli" tests="1" disabled="0" errors="0" failures="0">
        <testcase name="train_runs" classname="prefscope-cli::cli" timestamp="t" time="1.75">
        </testcase>
    </testsuite>
</testsuites>"#;

    #[test]
    fn junit_cases_carry_binary_name_time_and_failure() {
        let r = TestReport::from_junit(XML);
        assert_eq!(r.cases.len(), 3);
        assert_eq!(r.cases[0], Case { binary: "prefscope-core".into(), name: "train::tests::claim_a".into(), seconds: 7.25, failed: true });
        assert_eq!((r.cases[1].name.as_str(), r.cases[1].seconds, r.cases[1].failed), ("loss::tests::grad_<f64>", 0.5, false));
        assert_eq!((r.cases[2].binary.as_str(), r.cases[2].failed), ("prefscope-cli::cli", false));
    }

    #[test]
    fn report_sums_per_binary_and_lists_the_slowest_first() {
        let md = TestReport::from_junit(XML).to_markdown();
        assert!(md.contains("| prefscope-core | 2 | 1 | 8 |"), "{md}");
        assert!(md.contains("| **all** | **3** | **1** | **10** |"), "{md}");
        let first = md.find("`train::tests::claim_a` (FAILED)").unwrap();
        let second = md.find("`train_runs`").unwrap();
        assert!(first < second, "{md}");
    }

    #[test]
    fn cores_busy_comes_from_the_aggregate_cpu_line() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let a = parse_cpu_line("cpu  100 0 50 800 50 0 0 0 0 0").unwrap();
        assert_eq!(a, (150, 1000));
        let b = parse_cpu_line("cpu  400 0 100 1300 200 0 0 0 0 0").unwrap();
        // 350 busy ticks of 1,000: 35 % of the machine's cores.
        let busy = cores_busy(a, b).unwrap();
        assert!((busy - 0.35 * cores() as f64).abs() < 1e-12, "{busy}");
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5 6 7 8"), None, "a per-CPU line is not the total");
        assert_eq!(cores_busy(b, b), None, "no ticks between the readings");
    }
}
