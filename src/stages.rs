//! Where a call's time goes, for the benchmark: with the `stages` feature
//! (off by default, never shipped) the guest reads the monotonic clock
//! between the stages of a call and counts its allocations; `describe`
//! then prints the totals to stderr (one line, `stages` then `name=ns/calls`
//! pairs) and starts over. Without the feature every function here is
//! empty and compiles away.
//!
//! `host-test/benches/handler.rs --stages` builds the guest with it and
//! reads the line.

/// The stages of `preview-alert` and `handle-alert`, in call order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Binding types to core types (the strings are moved, not copied).
    FromWit,
    /// The instance's configuration.
    Config,
    /// Parsing the handler options.
    Options,
    /// Choosing the workspace and merging its style with the options'.
    Select,
    /// Rendering the message.
    Render,
    /// Serialising the request body.
    Serialize,
    /// `preview-alert` only: redacting the request for the host.
    Preview,
    /// `handle-alert` only: building the request's WASI HTTP resources
    /// (fields, outgoing-request, options) until `handle`.
    BuildRequest,
    /// `outgoing-handler.handle`.
    Handle,
    /// Streaming the body (`check-write`, `write`, `flush`, `finish`).
    WriteBody,
    /// Waiting for the response (`subscribe`, `block`, `get`): the host's
    /// round trip to the server.
    Wait,
    /// Reading the response's status, headers and body.
    ReadResponse,
    /// What Slack's answer means.
    Classify,
    /// Core types back to binding types.
    ToWit,
}

#[cfg(all(feature = "stages", target_arch = "wasm32"))]
mod on {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::Stage;

    const STAGES: [Stage; 14] = [
        Stage::FromWit,
        Stage::Config,
        Stage::Options,
        Stage::Select,
        Stage::Render,
        Stage::Serialize,
        Stage::Preview,
        Stage::BuildRequest,
        Stage::Handle,
        Stage::WriteBody,
        Stage::Wait,
        Stage::ReadResponse,
        Stage::Classify,
        Stage::ToWit,
    ];

    struct Counting;

    static ALLOCS: AtomicU64 = AtomicU64::new(0);
    static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

    // SAFETY: forwards to the system allocator; only counts.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    #[derive(Default)]
    struct Totals {
        /// Nanoseconds spent in each stage, in `STAGES` order.
        nanos: [u64; 14],
        /// When the current stage started.
        since: u64,
        /// When the current call started.
        call_start: u64,
        /// Time inside the exports, start to end.
        inside: u64,
        calls: u64,
    }

    thread_local! {
        static TOTALS: RefCell<Totals> = RefCell::new(Totals::default());
    }

    fn now() -> u64 {
        wasi::clocks::monotonic_clock::now()
    }

    pub fn begin() {
        let t = now();
        TOTALS.with_borrow_mut(|s| {
            s.since = t;
            s.call_start = t;
        });
    }

    pub fn end(stage: Stage) {
        let t = now();
        TOTALS.with_borrow_mut(|s| {
            let i = STAGES.iter().position(|x| *x == stage).unwrap_or(0);
            s.nanos[i] += t.saturating_sub(s.since);
            s.since = t;
        });
    }

    pub fn finish() {
        let t = now();
        TOTALS.with_borrow_mut(|s| {
            s.inside += t.saturating_sub(s.call_start);
            s.calls += 1;
        });
    }

    pub fn repeat() -> u32 {
        std::env::var("STAGES_REPEAT")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }

    pub fn report() {
        TOTALS.with_borrow_mut(|s| {
            let mut line = format!(
                "stages calls={} inside={} allocs={} alloc_bytes={}",
                s.calls,
                s.inside,
                ALLOCS.swap(0, Ordering::Relaxed),
                ALLOC_BYTES.swap(0, Ordering::Relaxed)
            );
            for (stage, nanos) in STAGES.iter().zip(s.nanos) {
                line.push_str(&format!(" {stage:?}={nanos}"));
            }
            eprintln!("{line}");
            *s = Totals::default();
        });
    }
}

#[cfg(all(feature = "stages", target_arch = "wasm32"))]
pub use on::{begin, end, finish, repeat, report};

/// A call starts (its first stage starts now).
#[cfg(not(all(feature = "stages", target_arch = "wasm32")))]
#[inline(always)]
pub fn begin() {}

/// `stage` ends now, and the next one starts.
#[cfg(not(all(feature = "stages", target_arch = "wasm32")))]
#[inline(always)]
pub fn end(_stage: Stage) {}

/// The call ends.
#[cfg(not(all(feature = "stages", target_arch = "wasm32")))]
#[inline(always)]
pub fn finish() {}

/// Prints the totals to stderr and starts over.
#[cfg(not(all(feature = "stages", target_arch = "wasm32")))]
#[inline(always)]
pub fn report() {}

/// How many times `preview-alert` does its work (`STAGES_REPEAT`, for a
/// profiler); once without the feature.
#[cfg(not(all(feature = "stages", target_arch = "wasm32")))]
#[inline(always)]
pub fn repeat() -> u32 {
    1
}
