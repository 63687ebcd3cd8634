//! The embedding every component shares: one engine (with epoch
//! interruption for deadlines), one linker (WASI + WASI HTTP), and a store
//! per instance holding its WASI contexts, its egress policy and its memory
//! cap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::net::{Hooks, NetPolicy, NetSettings};

/// How long one call may run and how much memory an instance may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time for one call, network waits included. The component's own
    /// timeouts (10 s to connect, 30 s for the answer) fit well inside.
    pub call_deadline: Duration,
    /// Linear memory per instance.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_deadline: Duration::from_secs(90),
            memory_bytes: 64 << 20,
        }
    }
}

/// How often the engine's epoch advances: the deadline's resolution.
const TICK: Duration = Duration::from_millis(10);

/// Per-instance host state.
pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) hooks: Hooks,
    limits: StoreLimits,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Advances the engine's epoch until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What hosts with different settings can share: compiled code stays valid.
struct Core {
    engine: Engine,
    linker: Linker<State>,
    _ticker: Ticker,
}

/// The engine, linker, network settings and limits of a host.
pub struct Host {
    core: Arc<Core>,
    net: Arc<NetSettings>,
    limits: Limits,
}

impl Host {
    /// Builds the engine and linker for `net` and `limits` (once per process is plenty).
    pub fn new(net: NetSettings, limits: Limits) -> Result<Arc<Host>> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        // Async WASI: calls run on fibers, so an instance waiting on the
        // network is a suspended task, not a blocked thread.
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticking = engine.clone();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })?;
        let core = Core {
            engine,
            linker,
            _ticker: Ticker {
                stop,
                thread: Some(thread),
            },
        };
        Ok(Arc::new(Host {
            core: Arc::new(core),
            net: Arc::new(net),
            limits,
        }))
    }

    /// A host on the same engine with other settings.
    pub fn with_settings(&self, net: NetSettings, limits: Limits) -> Arc<Host> {
        Arc::new(Host {
            core: self.core.clone(),
            net: Arc::new(net),
            limits,
        })
    }

    /// The wasmtime engine components are compiled with.
    pub fn engine(&self) -> &Engine {
        &self.core.engine
    }

    /// The linker with WASI and WASI HTTP.
    pub fn linker(&self) -> &Linker<State> {
        &self.core.linker
    }

    /// Where requests go, and how.
    pub fn net(&self) -> &NetSettings {
        &self.net
    }

    /// What each instance may spend.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A store for one instance: its WASI context, its egress policy, its
    /// memory cap (exceeding it traps rather than failing an allocation).
    pub fn store(&self, wasi: WasiCtx, policy: Arc<NetPolicy>) -> Store<State> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let state = State {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: Hooks {
                policy,
                left: Default::default(),
            },
            limits,
        };
        let mut store = Store::new(&self.core.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store
    }

    /// Starts the deadline for the next call on `store`.
    pub fn arm(&self, store: &mut Store<State>) {
        let ticks = (self.limits.call_deadline.as_millis() / TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
    }

    /// A trap, said in one line so a person knows what happened (never the
    /// wasm backtrace: it goes to no record, log line or label).
    pub fn explain(&self, error: wasmtime::Error) -> anyhow::Error {
        let text = format!("{error:?}");
        let trapped = if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            Trapped {
                limit: true,
                reason: format!(
                    "the component ran past its {:?} deadline and was stopped",
                    self.limits.call_deadline
                ),
            }
        } else if text.contains("forcing trap when growing memory")
            || text.contains("memory") && text.contains("limit")
        {
            Trapped {
                limit: true,
                reason: format!(
                    "the component tried to use more than {} MiB of memory and was stopped",
                    self.limits.memory_bytes >> 20
                ),
            }
        } else {
            let what = match error.downcast_ref::<Trap>() {
                Some(trap) => trap.to_string(),
                None => error.to_string(),
            };
            Trapped {
                limit: false,
                reason: format!(
                    "the component trapped: {}",
                    what.lines().next().unwrap_or_default()
                ),
            }
        };
        anyhow::Error::new(trapped)
    }
}

/// A call the host stopped: the instance is dead.
#[derive(Debug)]
pub struct Trapped {
    /// Stopped by a limit the host imposes (the deadline, the memory cap),
    /// not by the component's own fault: another try on a fresh instance
    /// may succeed.
    pub limit: bool,
    /// One line saying what happened.
    pub reason: String,
}

impl std::fmt::Display for Trapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Trapped {}

/// One line for a failed call: the trap's reason, else the error's first
/// line.
pub fn trap_reason(error: &anyhow::Error) -> String {
    match error.downcast_ref::<Trapped>() {
        Some(trapped) => trapped.reason.clone(),
        None => format!("{error:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}
