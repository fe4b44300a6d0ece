//! Multi-process data-parallel training (`train --nodes N`) over burn-collective.
//!
//! Every rank builds the same trainer from the same config and seed; each step, each rank
//! computes the gradients of its slice of the minibatch ([`Trainer::step_rank`]) and one
//! all-reduce of burn-collective sums them. Rank 0 hosts burn-collective's orchestrator and
//! writes the run folder; the other ranks only compute.
//!
//! burn-collective 0.21's node barrier (`SyncService::sync`) clears a copy of its list of synced
//! peers, so a registration survives exactly one global all-reduce: the second one waits
//! forever. So every step registers, all-reduces once and finishes, alternating between two
//! orchestrators (and two data ports per rank): a rank cannot register for step t+2 before every
//! rank has finished step t (it needed their step t+1 gradients), so no orchestrator ever sees a
//! rank of the next step while one of the last is still registered. The gradients, flags, loss
//! and accuracy travel as one flat tensor, so one all-reduce per step suffices.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_collective::{AllReduceStrategy, CollectiveConfig, PeerId, ReduceOperation, all_reduce, finish_collective, register};
use burn_communication::Address;

#[derive(clap::Args, Clone, Debug)]
pub struct NodeArgs {
    /// Data-parallel training over this many processes, one per machine (e.g. one per SLURM
    /// task): each step's batch is split across them and their gradients summed with
    /// burn-collective. Rank 0 writes the run folder. Scenario and embedding runs.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// This process's rank, 0..nodes (default: $SLURM_PROCID, else 0).
    #[arg(long)]
    pub node_rank: Option<usize>,
    /// HOST:PORT of rank 0, which hosts the coordinator on PORT and PORT+1; rank r serves its
    /// gradients on PORT+2+2r and PORT+3+2r. Needed with --nodes above 1.
    #[arg(long, value_name = "HOST:PORT")]
    pub coordinator: Option<String>,
    /// The host name or address the other ranks reach this process at (default: 127.0.0.1
    /// when the coordinator is on this machine's loopback, else this machine's host name).
    #[arg(long)]
    pub node_host: Option<String>,
    /// Seconds to wait for the other ranks at each exchange before stopping with an error
    /// (the first exchange waits for every rank to start).
    #[arg(long, default_value_t = 120.0)]
    pub peer_timeout: f64,
}

/// This process's place in a multi-process run and its connection to the others.
pub struct Collective {
    pub rank: usize,
    pub ranks: usize,
    coordinator_host: String,
    port: u16,
    node_host: String,
    timeout: Duration,
    /// Exchanges so far; its parity picks the orchestrator and data port of the next one.
    round: u64,
    /// The training step the next exchange belongs to (for messages).
    pub step: usize,
}

impl NodeArgs {
    /// `None` for a one-process run; refuses inconsistent flags by name.
    pub fn collective(&self) -> Result<Option<Collective>> {
        if self.nodes == 0 {
            bail!("--nodes must be at least 1");
        }
        let rank = match self.node_rank {
            Some(r) => r,
            None => match std::env::var("SLURM_PROCID") {
                Ok(v) if self.nodes > 1 => v.parse().map_err(|_| anyhow::anyhow!("SLURM_PROCID={v:?} is not a rank; pass --node-rank"))?,
                _ => 0,
            },
        };
        if self.nodes == 1 {
            if self.coordinator.is_some() || rank != 0 {
                bail!("--coordinator and --node-rank need --nodes above 1");
            }
            return Ok(None);
        }
        if rank >= self.nodes {
            bail!("--node-rank {rank} must be below --nodes {}", self.nodes);
        }
        let Some(coordinator) = &self.coordinator else { bail!("--nodes {} needs --coordinator HOST:PORT (rank 0's address)", self.nodes) };
        let Some((host, port)) = coordinator.rsplit_once(':') else { bail!("--coordinator {coordinator:?}: expected HOST:PORT") };
        let port: u16 = port.parse().map_err(|_| anyhow::anyhow!("--coordinator {coordinator:?}: {port:?} is not a port"))?;
        if port as usize + 3 + 2 * self.nodes > u16::MAX as usize {
            bail!("--coordinator port {port} leaves no room for {} ranks' ports above it", self.nodes);
        }
        if !(self.peer_timeout > 0.0 && self.peer_timeout.is_finite()) {
            bail!("--peer-timeout must be a positive number of seconds");
        }
        let node_host = match &self.node_host {
            Some(h) => h.clone(),
            None if matches!(host, "127.0.0.1" | "localhost" | "::1") => "127.0.0.1".to_string(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "127.0.0.1".to_string()),
        };
        let c = Collective { rank, ranks: self.nodes, coordinator_host: host.to_string(), port, node_host, timeout: Duration::from_secs_f64(self.peer_timeout), round: 0, step: 0 };
        c.start()?;
        Ok(Some(c))
    }
}

impl Collective {
    fn start(&self) -> Result<()> {
        // burn-collective runs its servers and exchanges on one tokio runtime, built on first
        // use with TOKIO_WORKER_THREADS workers (default: one per core). With several, two
        // races of burn-collective 0.21 fail or hang about one exchange in a few thousand on
        // a busy machine: a peer connects, once and without retrying, to this rank's data
        // server before a worker has bound it; and a peer's barrier message lands between
        // `SyncService::sync`'s check and its wait, which then never wakes. With one worker,
        // the server binds before the registration that lets peers connect goes out, and the
        // check-then-wait has no yield in between.
        // SAFETY: `train` calls this first, before any other thread of this process exists
        // (burn's runtime, the coordinator below, the backend's pool), so none reads the
        // environment meanwhile.
        unsafe { std::env::set_var("TOKIO_WORKER_THREADS", "1") };
        silence_library_logs();
        keep_library_panics();
        let own = [self.data_port(0), self.data_port(1)];
        let mut ports = own.to_vec();
        if self.rank == 0 {
            ports.extend([self.port, self.port + 1]);
        }
        // burn's servers report a taken port only in a log line; say it here instead.
        for p in ports {
            if let Err(e) = TcpListener::bind(("0.0.0.0", p)) {
                bail!("rank {}: port {p} is not free ({e}); choose another --coordinator port", self.rank);
            }
        }
        if self.rank == 0 {
            let (a, b) = (self.port, self.port + 1);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a tokio runtime for the coordinator");
                // Both orchestrators stop on SIGINT/SIGTERM (burn installs the handlers), and
                // would leave this process training alone: stop it too.
                runtime.block_on(async {
                    tokio::select! {
                        _ = burn_collective::start_global_orchestrator(a) => {}
                        _ = burn_collective::start_global_orchestrator(b) => {}
                    }
                });
                eprintln!("rank 0: the coordinator stopped (interrupted); stopping");
                std::process::exit(130);
            });
        }
        Ok(())
    }

    fn data_port(&self, parity: u16) -> u16 {
        self.port + 2 + 2 * self.rank as u16 + parity
    }

    /// The ranks other than this one, for messages.
    fn others(&self) -> String {
        let others: Vec<String> = (0..self.ranks).filter(|r| *r != self.rank).map(|r| r.to_string()).collect();
        match others.len() {
            1 => format!("rank {}", others[0]),
            _ => format!("one of ranks {}", others.join(", ")),
        }
    }

    /// The element-wise sum of `t` over all ranks (burn-collective: register, all-reduce,
    /// finish). Waits at most the peer timeout: a rank that died or hung stops this one with
    /// an error that names it.
    pub fn all_reduce<B: Backend>(&mut self, t: Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        let parity = (self.round % 2) as u16;
        self.round += 1;
        let port = self.data_port(parity);
        let address = |host: &str, port: u16| -> Address { format!("ws://{host}:{port}").parse().expect("any string is an address") };
        let config = CollectiveConfig::default()
            .with_num_devices(1)
            .with_num_nodes(self.ranks as u32)
            .with_global_address(address(&self.coordinator_host, self.port + parity))
            .with_node_address(address(&self.node_host, port))
            .with_data_service_port(port)
            // Two ranks sum a + b on one of them, the same bits whichever it is.
            .with_global_all_reduce_strategy(AllReduceStrategy::Centralized);
        let device = t.device();
        let values = t.into_primitive().tensor();
        if !port_frees(port, Duration::from_secs(2)) {
            // burn would fail to serve it without a word, and the peers' connections would fail.
            bail!("rank {}: port {port} was taken by another program during the run (at step {}); restart every rank with --resume RUN_DIR and a --coordinator port below 32768", self.rank, self.step);
        }
        let (tx, rx) = mpsc::channel();
        let mute = MuteStdout::new();
        std::thread::spawn(move || {
            let id = PeerId::from(0usize);
            let result = register::<B>(id, device, config)
                .and_then(|()| all_reduce::<B>(id, values, ReduceOperation::Sum))
                .and_then(|sum| finish_collective::<B>(id).map(|()| sum))
                .map_err(|e| format!("{e:?}"));
            let _ = tx.send(result);
        });
        let result = rx.recv_timeout(self.timeout);
        drop(mute);
        let what = if self.round == 1 { "the start of the run".to_string() } else { format!("step {}", self.step) };
        let cause = match result {
            Ok(Ok(sum)) => return Ok(Tensor::from_primitive(TensorPrimitive::Float(sum))),
            Ok(Err(e)) => format!("the exchange failed ({e})"),
            Err(_) => format!("no answer for {:.0} s: it died or hung, or its --coordinator/--node-host does not reach this one", self.timeout.as_secs_f64()),
        };
        let library = LIBRARY_PANIC.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|m| format!(" (burn-collective: {m})")).unwrap_or_default();
        bail!(
            "rank {} of {}: lost {} at {what}: {cause}{library}; stopping. Restart every rank with --resume RUN_DIR to continue from the last checkpoint",
            self.rank,
            self.ranks,
            self.others()
        )
    }

    /// The first exchange: every rank must be there, with a distinct rank and the same run
    /// config (a different config would give gradients of another shape or meaning).
    pub fn check_peers<B: Backend>(&mut self, config_text: &str, device: &B::Device) -> Result<()> {
        let mut hasher = std::hash::DefaultHasher::new();
        config_text.hash(&mut hasher);
        let h = hasher.finish();
        // 16-bit pieces: their sums over up to 256 ranks stay exact in f32.
        let pieces = [(h & 0xffff) as f32, ((h >> 16) & 0xffff) as f32, ((h >> 32) & 0xffff) as f32];
        let mut v = vec![0.0f32; self.ranks];
        v[self.rank] = 1.0;
        v.extend(pieces);
        let sum: Vec<f32> = self.all_reduce(Tensor::<B, 1>::from_floats(v.as_slice(), device))?.into_data().to_vec().expect("f32 values");
        if let Some(r) = (0..self.ranks).find(|&r| sum[r] != 1.0) {
            bail!("rank {}: {} processes started as rank {r} (each needs its own --node-rank)", self.rank, sum[r]);
        }
        if pieces.iter().zip(&sum[self.ranks..]).any(|(p, s)| *s != p * self.ranks as f32) {
            bail!("rank {}: the ranks' run configs differ; start every rank with the same flags and config file", self.rank);
        }
        Ok(())
    }
}

/// No server listens on `port` (binding it succeeds), or stops within `within`.
fn port_frees(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while TcpListener::bind(("0.0.0.0", port)).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// The first panic of burn-collective's runtime threads (a lost peer makes them panic, e.g.
/// "Failed to receive message from websocket"): kept for the error message instead of a
/// backtrace on stderr, since the exchange's timeout reports the failure.
static LIBRARY_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn keep_library_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name().is_some_and(|n| n.starts_with("tokio")) {
            let msg = info.payload().downcast_ref::<String>().cloned().or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()));
            LIBRARY_PANIC.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(msg.unwrap_or_else(|| "a runtime thread panicked".to_string()));
        } else {
            default(info);
        }
    }));
}

/// burn's websocket servers install a tracing subscriber that prints every transfer at INFO
/// level; an inert global subscriber set first keeps the training output readable.
fn silence_library_logs() {
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
}

/// burn-collective prints "Connecting to …" on stdout at every registration; stdout carries the
/// JSON summary, so it points at /dev/null while an exchange runs (this thread is then blocked
/// waiting, and prints nothing itself).
struct MuteStdout {
    #[cfg(unix)]
    saved: Option<i32>,
}

impl MuteStdout {
    fn new() -> Self {
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        {
            // SAFETY: plain descriptor calls; fd 1 is restored from `saved` on drop.
            unsafe {
                let saved = libc::dup(1);
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                if saved < 0 || null < 0 {
                    return Self { saved: None };
                }
                libc::dup2(null, 1);
                libc::close(null);
                Self { saved: Some(saved) }
            }
        }
        #[cfg(not(unix))]
        Self {}
    }
}

impl Drop for MuteStdout {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        if let Some(saved) = self.saved {
            // SAFETY: restores the descriptor saved in `new`.
            unsafe {
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}
