//! The figures in docs/performance.md, in one run:
//!
//! - component size;
//! - cold start (compiling the component) and warm start (loading the
//!   precompiled component, instantiating, configuring);
//! - guest work per alert (choose the workspace, render, build the request:
//!   `preview-alert`) inside wasmtime against the same Rust compiled natively,
//!   for Kapacitor's layout and for templated Block Kit;
//! - alerts per second to a Slack stand-in on 127.0.0.1: the component with
//!   and without connection reuse, a pool of instances, a plain native hyper
//!   client posting the same payload (the floor), and python-slack-sdk's
//!   `WebClient` (installed by `scripts/bench.sh`).
//!
//! Run: `scripts/bench.sh` (or `cargo bench -p host-test --bench handler`).
//! `--quick` runs fewer iterations. `--guest` runs only the guest's
//! figures (work per alert, one instance with keep-alive beside the native
//! hyper client); `--stages` adds where a call's time goes: it builds the
//! component with the `stages` feature (into `target/guest-stages`) and
//! prints its stages, allocations and the crossing, beside the same stages
//! timed natively. `BENCH_COMPONENT=FILE` measures another build of the
//! component (an experiment: another opt-level, an older commit).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use alert_handler_host::cache;
use alert_handler_host::net::NetSettings;
use alert_handler_host::{AlertEvent, Level, Runtime, Timestamp};
use alert_handler_host::{Host, Limits};
use host_test::mock_slack::MockSlack;
use host_test::pool::Pool;
use host_test::COMPONENT_PATH;

// A bench uses part of the tests' serve helper.
#[allow(dead_code)]
#[path = "../tests/all/common/server.rs"]
mod server;

fn config(url: &str) -> String {
    format!(
        "[[slack]]\nenabled = true\ndefault = true\nworkspace = \"alerts\"\nurl = \"{url}/api/chat.postMessage\"\ntoken = \"xoxb-bench\"\nchannel = \"#alerts\"\nusername = \"AlertBot\"\n"
    )
}

const MESSAGE: &str = "Hey, check your CPU: usage_idle is 3.2 on host=web-01";

fn event() -> AlertEvent {
    AlertEvent {
        id: "cpu:host=web-01".into(),
        message: MESSAGE.into(),
        details: String::new(),
        time: Timestamp {
            seconds: 1_764_150_000,
            nanoseconds: 0,
        },
        duration: 300_000_000_000,
        level: Level::Critical,
        previous_level: Some(Level::Warning),
        recoverable: true,
        topic: None,
        name: "cpu".into(),
        task_name: "cpu_alert".into(),
        group: "host=web-01".into(),
        tags: vec![("host".into(), "web-01".into())],
        fields: vec![],
        context: vec![],
    }
}

fn options() -> Vec<(String, String)> {
    vec![("iconEmoji".into(), ":fire:".into())]
}

/// Block Kit with templated title, text and footer, a field and a mention:
/// everything rendering does, per alert.
fn blocks_options() -> Vec<(String, String)> {
    [
        ("layout", "blocks"),
        (
            "title",
            "{{emoji level}} {{level}}: {{name}} on {{tags.host}}",
        ),
        ("text", "{{message}} ({{truncate details 200}})"),
        ("footer", "{{taskName}} · for {{duration}} · {{time}}"),
        (
            "fields",
            r#"[{"title":"Host","value":"{{tags.host}}","short":true}]"#,
        ),
        ("mention", "here"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // Only the guest's figures: work per alert, its breakdown, one instance
    // with keep-alive beside the native hyper client.
    let guest_only = args.iter().any(|a| a == "--guest");
    let (guest_calls, posts) = if quick { (2_000, 300) } else { (20_000, 2_000) };
    // Another build of the component (an experiment) in place of this
    // checkout's.
    let component = std::env::var("BENCH_COMPONENT").unwrap_or_else(|_| COMPONENT_PATH.into());
    let wasm = Path::new(&component);
    println!(
        "host-test benchmark ({} mode)\n",
        if quick { "quick" } else { "full" }
    );

    // Size.
    let size = std::fs::metadata(wasm)?.len();
    println!(
        "component size: {size} bytes ({:.0} KiB)",
        size as f64 / 1024.0
    );

    // Cold and warm start.
    let host = Host::new(NetSettings::default(), Limits::default())?;
    let bytes = std::fs::read(wasm)?;
    let compile: Vec<Duration> = (0..3)
        .map(|_| {
            let t = Instant::now();
            host.engine()
                .precompile_component(&bytes)
                .expect("compiles");
            t.elapsed()
        })
        .collect();
    let cache_dir = std::env::temp_dir().join(format!("host-test-bench-{}", std::process::id()));
    cache::load(host.engine(), wasm, &bytes, &cache_dir)?;
    let slack = MockSlack::start()?;
    let text = config(&slack.url());
    let warm: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            let runtime = Runtime::open(host.clone(), wasm, Some(&cache_dir)).expect("loads");
            assert_eq!(runtime.source(), cache::Source::Cached);
            let mut plugin = runtime.instantiate().expect("instantiates");
            plugin
                .configure(&text)
                .expect("no trap")
                .expect("configured");
            t.elapsed()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&cache_dir);
    let runtime = Runtime::open(host.clone(), wasm, None)?;
    let instantiate: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            runtime.instantiate().expect("instantiates");
            t.elapsed()
        })
        .collect();
    println!(
        "cold start (compile the component): {:.1} ms (median of 3)",
        median(compile).as_secs_f64() * 1e3
    );
    println!(
        "warm start (load precompiled + instantiate + configure): {:.2} ms (median of 20)",
        median(warm).as_secs_f64() * 1e3
    );
    println!(
        "instantiate from InstancePre: {:.1} µs (median of 200)\n",
        median(instantiate).as_secs_f64() * 1e6
    );

    // Guest work per alert: wasm against native, for Kapacitor's layout
    // and for Block Kit with templates (compiled once; rendered per alert),
    // and where a call's time goes.
    let mut plugin = runtime.instantiate()?;
    plugin
        .configure(&text)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let native_config =
        slack_alert_handler::config::Config::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let event = event();
    let stages = if args.iter().any(|a| a == "--stages") {
        Some(stages_instance(&host, &text)?)
    } else {
        None
    };
    guest_work(&mut plugin, stages, &native_config, &event, guest_calls)?;
    if guest_only {
        keep_alive_rows(&mut plugin, &runtime, &text, &slack.url(), &event, posts)?;
        return Ok(());
    }
    let options = options();

    // Alerts per second to the stand-in.
    let mut rows: Vec<(String, f64)> = Vec::new();
    for _ in 0..50 {
        plugin
            .handle_alert(&event, &options)?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let t = Instant::now();
    for _ in 0..posts {
        plugin
            .handle_alert(&event, &options)?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    rows.push((
        "component, connection reuse (1 instance)".into(),
        per_second(posts, t.elapsed()),
    ));

    let fresh = runtime.with_settings(
        NetSettings {
            reuse_connections: false,
            ..NetSettings::default()
        },
        runtime.host().limits(),
    );
    let mut no_reuse = fresh.instantiate()?;
    no_reuse
        .configure(&text)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let t = Instant::now();
    for _ in 0..posts {
        no_reuse
            .handle_alert(&event, &options)?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    rows.push((
        "component, new connection per alert".into(),
        per_second(posts, t.elapsed()),
    ));

    let pool = Pool::start(&runtime, &text, 8, 64)?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let t = Instant::now();
    let answers: Vec<_> = (0..posts)
        .map(|_| pool.submit(event.clone(), options.clone()).expect("queued"))
        .collect();
    for answer in answers {
        answer
            .recv()?
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    rows.push((
        "component, pool of 8 instances".into(),
        per_second(posts, t.elapsed()),
    ));
    drop(pool);

    let body = plugin
        .preview_alert(&event, &options)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .body;
    rows.push((
        "native hyper client, keep-alive (the floor)".into(),
        hyper_floor(&slack.url(), &body, posts)?,
    ));

    match python_slack_sdk(&slack.url(), &body, posts) {
        Ok(rate) => rows.push(("python-slack-sdk WebClient".into(), rate)),
        Err(e) => println!("python-slack-sdk: skipped ({e:#}); scripts/bench.sh installs it\n"),
    }

    // `host-test serve` as users run it (a child process, this profile): a
    // backlog drained over 100 channels with pacing off (its intake has a
    // bench of its own: `--bench intake`).
    let drain = serve_drain((posts * 10).max(10_000))?;
    rows.push((
        "serve: draining a backlog over 100 channels, pacing off".into(),
        drain,
    ));

    let floor = rows
        .iter()
        .find(|(n, _)| n.starts_with("native hyper"))
        .map(|(_, r)| *r)
        .unwrap_or(1.0);
    println!("alerts per second to a Slack stand-in on 127.0.0.1 ({posts} sequential posts each, pool concurrent):");
    for (name, rate) in &rows {
        println!(
            "  {name:<46} {rate:>9.0}/s  ({:.2}x the native floor)",
            rate / floor
        );
    }
    Ok(())
}

/// The same payload posted by a plain hyper client with keep-alive.
/// `serve`'s drain: alerts/s delivered from a backlog of `alerts` over 100
/// channels, pacing off, the default 8 workers.
fn serve_drain(alerts: usize) -> Result<f64> {
    let slack = MockSlack::start()?;
    let dir = tempfile::tempdir()?;
    let config = server::write_config(dir.path(), &config(&slack.url()));
    let server = server::Server::start(
        &config,
        &dir.path().join("spool"),
        &["--channel-interval-ms", "0", "--channel-burst", "1"],
    );
    // Slack holds its answers until the backlog is in.
    slack.hold();
    let connections = 16;
    let per_connection = alerts.div_ceil(connections);
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let addr = server.addr();
            std::thread::spawn(move || keep_alive_posts(addr, c, per_connection))
        })
        .collect();
    for thread in threads {
        thread.join().expect("a poster")?;
    }
    let total = connections * per_connection;
    let t = Instant::now();
    slack.release();
    let deadline = Instant::now() + Duration::from_secs(300);
    // Counted at the stand-in: asking serve (`GET`) would cost it work.
    while slack.received() < total {
        if Instant::now() > deadline {
            anyhow::bail!("serve did not drain its backlog in time");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let drained = per_second(total, t.elapsed());
    // Every alert delivered once, each ending recorded.
    while server.spool()["finished"].as_array().map_or(0, Vec::len) < total.min(10_000) {
        if Instant::now() > deadline {
            anyhow::bail!("serve did not record every ending in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if slack.received() != total {
        anyhow::bail!("{} requests for {total} alerts", slack.received());
    }
    Ok(drained)
}

/// Posts `count` alerts over one keep-alive connection, each to one of
/// 100 channels; every answer must be `202`.
fn keep_alive_posts(addr: std::net::SocketAddr, connection: usize, count: usize) -> Result<()> {
    let mut serve = server::Connection::open(addr)?;
    for n in 0..count {
        let body = server::alert(&format!("drain-{connection}-{n}"));
        let query = format!("channel=%23c{}", (connection * count + n) % 100);
        let status = serve.post(&query, &body)?;
        if !status.contains(" 202 ") {
            anyhow::bail!("serve answered {status}");
        }
    }
    Ok(())
}

fn hyper_floor(base: &str, body: &str, posts: usize) -> Result<f64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let url = format!("{base}/api/chat.postMessage");
        let post = || {
            let request = hyper::Request::post(&url)
                .header("content-type", "application/json")
                .header("authorization", "Bearer xoxb-bench")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("a valid request");
            client.request(request)
        };
        for _ in 0..50 {
            let response = post().await?;
            http_body_util::BodyExt::collect(response.into_body()).await?;
        }
        // As `per_call`: the best of seven batches, on this shared machine.
        let batch = (posts / 7).max(1);
        let mut best = Duration::MAX;
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..batch {
                let response = post().await?;
                http_body_util::BodyExt::collect(response.into_body()).await?;
            }
            best = best.min(t.elapsed());
        }
        Ok(per_second(batch, best))
    })
}

/// python-slack-sdk's WebClient posting the same payload.
fn python_slack_sdk(base: &str, body: &str, posts: usize) -> Result<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/slack_sdk_bench.py");
    let payload = std::env::temp_dir().join(format!(
        "host-test-bench-payload-{}.json",
        std::process::id()
    ));
    std::fs::write(&payload, body)?;
    let output = Command::new("python3")
        .arg(&script)
        .arg(base)
        .arg(posts.to_string())
        .arg(&payload)
        .output()
        .context("running python3")?;
    let _ = std::fs::remove_file(&payload);
    if !output.status.success() {
        anyhow::bail!(
            "{}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("failed")
        );
    }
    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("reading its timing")?;
    Ok(posts as f64 / seconds)
}

/// The same alert as the core's type, for the native side.
fn native_event(e: &AlertEvent) -> slack_alert_handler::event::AlertEvent {
    use slack_alert_handler::event::Level as L;
    let level = |l: &Level| match l {
        Level::Ok => L::Ok,
        Level::Info => L::Info,
        Level::Warning => L::Warning,
        Level::Critical => L::Critical,
    };
    slack_alert_handler::event::AlertEvent {
        id: e.id.clone(),
        message: e.message.clone(),
        details: e.details.clone(),
        time: (e.time.seconds, e.time.nanoseconds),
        duration: e.duration,
        level: level(&e.level),
        previous_level: e.previous_level.as_ref().map(level),
        recoverable: e.recoverable,
        topic: e.topic.clone(),
        name: e.name.clone(),
        task_name: e.task_name.clone(),
        group: e.group.clone(),
        tags: e.tags.clone(),
        fields: vec![],
        context: vec![],
    }
}

/// An alert with a 4 KiB message and 30 tags: what lifting more costs.
fn big_event() -> AlertEvent {
    let mut e = event();
    e.message = MESSAGE.repeat(4096 / MESSAGE.len() + 1);
    e.tags = (0..30)
        .map(|i| (format!("tag{i}"), format!("value-{i}")))
        .collect();
    e
}

/// Time per call of `f`: the fastest of seven batches of `n / 7` calls,
/// after a warm-up (this machine is shared: the minimum is what the code
/// costs, the rest is other people's work).
fn per_call(n: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..(n / 10).max(50) {
        f();
    }
    let batch = (n / 7).max(1);
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed() / batch as u32
        })
        .min()
        .expect("seven batches")
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// An instance of the component built with the `stages` feature, its
/// stderr kept: what `describe` prints there is the stage totals.
struct Stages {
    instance: alert_handler_host::Instance,
    stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
}

impl Stages {
    /// The totals since the last read: per call, nanoseconds by stage,
    /// plus `inside`, `allocs` and `alloc_bytes`.
    fn read(&mut self) -> Result<Vec<(String, f64)>> {
        let before = self.stderr.contents().len();
        self.instance.describe()?;
        let out = self.stderr.contents();
        let line = String::from_utf8_lossy(&out[before..]).into_owned();
        let line = line
            .lines()
            .find(|l| l.starts_with("stages "))
            .context("no stage line from the instrumented guest")?
            .to_string();
        let pairs: Vec<(String, u64)> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        let calls = pairs
            .iter()
            .find(|(k, _)| k == "calls")
            .map_or(1, |(_, v)| (*v).max(1));
        Ok(pairs
            .into_iter()
            .filter(|(k, _)| k != "calls")
            .map(|(k, v)| (k, v as f64 / calls as f64))
            .collect())
    }
}

/// Builds the guest with `--features stages` (its own target directory)
/// and configures an instance of it.
fn stages_instance(host: &std::sync::Arc<Host>, text: &str) -> Result<Stages> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the checkout")?;
    let target = root.join("target").join("guest-stages");
    println!(
        "building the instrumented guest (--features stages) in {} ...",
        target.display()
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "slack-alert-handler",
            "--features",
            "stages",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("running cargo")?;
    if !status.success() {
        anyhow::bail!("building the instrumented guest failed");
    }
    let path = target.join("wasm32-wasip2/release/slack_alert_handler.wasm");
    let runtime = Runtime::open(host.clone(), &path, None)?;
    let stderr = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(1 << 20);
    let wasi = wasmtime_wasi::WasiCtx::builder()
        .stderr(stderr.clone())
        .build();
    let mut instance = runtime.instantiate_with(wasi)?;
    instance
        .configure(text)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(Stages { instance, stderr })
}

/// Prints the stage split read from the instrumented instance; with
/// `total` (the uninstrumented call as the host times it) also what is
/// left for the crossing: the host's call, lifting the arguments (a call
/// into the guest's allocator per string) and lowering the result.
fn print_stages(rows: &[(String, f64)], total: Option<Duration>) {
    let get = |k: &str| rows.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v);
    let inside = get("inside") / 1e3;
    let mut parts: Vec<String> = rows
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "inside" | "allocs" | "alloc_bytes") && *v > 0.0)
        .map(|(k, v)| format!("{k} {:.2}", v / 1e3))
        .collect();
    parts.push(format!(
        "{:.0} allocations ({:.0} bytes)",
        get("allocs"),
        get("alloc_bytes")
    ));
    println!(
        "      instrumented guest, mean: {inside:.2} µs inside the export (by stage, µs: {})",
        parts.join(", ")
    );
    if let Some(total) = total {
        println!(
            "      crossing (the uninstrumented call less the time inside): ≈ {:.2} µs",
            (micros(total) - inside).max(0.0)
        );
    }
}

/// The same stages natively, each timed over `n` runs, for the ratio by
/// stage.
fn native_stages(
    config: &slack_alert_handler::config::Config,
    event: &slack_alert_handler::event::AlertEvent,
    options: &[(String, String)],
    n: usize,
) {
    use slack_alert_handler::options::{HandlerOptions, HostOptions};
    use slack_alert_handler::payload::Request;
    use slack_alert_handler::render;
    use std::hint::black_box;
    let parsed = HandlerOptions::parse(options).expect("options");
    let ws = config.select(&parsed.workspace).expect("workspace");
    let style = ws.style.merged(&parsed.style);
    let rendered = render::message(ws, &parsed, &HostOptions::default(), &style, event);
    let request = Request::new(ws, &rendered.message);
    let times = [
        (
            "Options",
            per_call(n, || {
                black_box(HandlerOptions::parse_repeated(options).expect("options"));
            }),
        ),
        (
            "Select",
            per_call(n, || {
                let ws = config.select(&parsed.workspace).expect("workspace");
                let style = ws.style.merged(&parsed.style);
                style.check_layout().expect("layout");
                black_box(style);
            }),
        ),
        (
            "Render",
            per_call(n, || {
                black_box(render::message(
                    ws,
                    &parsed,
                    &HostOptions::default(),
                    &style,
                    event,
                ));
            }),
        ),
        (
            "Serialize",
            per_call(n, || {
                black_box(Request::new(ws, &rendered.message));
            }),
        ),
        (
            "Preview",
            per_call(n, || {
                black_box(request.preview());
            }),
        ),
    ];
    let parts: Vec<String> = times
        .iter()
        .map(|(k, d)| format!("{k} {:.2}", micros(*d)))
        .collect();
    println!("      native, the same stages (µs): {}", parts.join(", "));
}

/// Guest work per alert: wasm against native for each layout, the bare
/// crossing, a big alert, and (with `--stages`) where the time goes inside.
fn guest_work(
    plugin: &mut alert_handler_host::Instance,
    mut stages: Option<Stages>,
    native_config: &slack_alert_handler::config::Config,
    event: &AlertEvent,
    calls: usize,
) -> Result<()> {
    println!("guest work per alert (choose workspace, render, build request):");
    let bare = per_call(calls, || {
        plugin.service_test_options().expect("no trap");
    });
    println!(
        "  the bare crossing: service-test-options (no arguments, 4 short pairs back): {:.2} µs",
        micros(bare)
    );
    let big = big_event();
    let cases = [
        ("kapacitor", options(), event.clone()),
        ("blocks", blocks_options(), event.clone()),
        ("kapacitor, 4 KiB message and 30 tags", options(), big),
    ];
    for (layout, options, event) in cases {
        let preview = |plugin: &mut alert_handler_host::Instance| {
            plugin
                .preview_alert(&event, &options)
                .expect("no trap")
                .expect("previews");
        };
        let in_wasm = per_call(calls, || preview(plugin));
        let native_event = native_event(&event);
        let native = per_call(calls * 5, || {
            std::hint::black_box(
                slack_alert_handler::handler::prepare_alert(native_config, &native_event, &options)
                    .expect("prepares")
                    .request
                    .preview(),
            );
        });
        println!(
            "  {layout:<9} in wasmtime (preview-alert, incl. the WIT call): {:.2} µs; native Rust (opt-level 3): {:.2} µs; wasm / native {:.1}x",
            micros(in_wasm),
            micros(native),
            in_wasm.as_secs_f64() / native.as_secs_f64()
        );
        if let Some(stages) = stages.as_mut() {
            stages.read()?;
            for _ in 0..calls {
                preview(&mut stages.instance);
            }
            print_stages(&stages.read()?, Some(in_wasm));
            native_stages(native_config, &native_event, &options, calls * 5);
        }
    }
    if let Some(stages) = stages.as_mut() {
        // handle-alert against the stand-in: the WASI HTTP side.
        let options = options();
        let handle = |plugin: &mut alert_handler_host::Instance| {
            plugin
                .handle_alert(event, &options)
                .expect("no trap")
                .expect("delivered");
        };
        let posts = (calls / 4).max(200);
        let sent = per_call(posts, || handle(plugin));
        stages.read()?;
        for _ in 0..posts {
            handle(&mut stages.instance);
        }
        println!(
            "  handle-alert, kapacitor, to the stand-in (keep-alive): {:.2} µs",
            micros(sent)
        );
        print_stages(&stages.read()?, None);
    }
    println!();
    Ok(())
}

/// One instance with keep-alive beside the native hyper client, in the
/// same run.
fn keep_alive_rows(
    plugin: &mut alert_handler_host::Instance,
    runtime: &Runtime,
    config: &str,
    base: &str,
    event: &AlertEvent,
    posts: usize,
) -> Result<()> {
    let options = options();
    let each = per_call(posts, || {
        plugin
            .handle_alert(event, &options)
            .expect("no trap")
            .expect("delivered");
    });
    let on_one_thread = 1.0 / async_per_call(runtime, config, event, posts)?.as_secs_f64();
    let body = plugin
        .preview_alert(event, &options)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .body;
    let component = 1.0 / each.as_secs_f64();
    let floor = hyper_floor(base, &body, posts)?;
    let (one_thread, blocking) = host_client(base, &body, posts)?;
    println!("alerts per second to a Slack stand-in on 127.0.0.1 ({posts} sequential posts each):");
    println!(
        "  component, connection reuse (1 instance)       {component:>9.0}/s  ({:.2}x the native floor)",
        component / floor
    );
    println!(
        "  component, async on one thread (as serve)      {on_one_thread:>9.0}/s  ({:.2}x)",
        on_one_thread / floor
    );
    println!(
        "  the host's client (net::NetPolicy), one thread {one_thread:>9.0}/s  ({:.2}x)",
        one_thread / floor
    );
    println!(
        "  the same, blocking as sync WASI HTTP does     {blocking:>9.0}/s  ({:.2}x)",
        blocking / floor
    );
    println!("  native hyper client, keep-alive (the floor)    {floor:>9.0}/s  (1.00x)");
    Ok(())
}

/// One instance called the way serve calls it (`handle_alert_async` on a
/// task), here on a current-thread runtime so the call, its fiber and its
/// connection share one thread, as the hyper floor does: time per alert,
/// the fastest of seven batches.
fn async_per_call(
    runtime: &Runtime,
    config: &str,
    event: &AlertEvent,
    posts: usize,
) -> Result<Duration> {
    // Its own connection pool: a connection belongs to the runtime that
    // made it.
    let runtime = runtime.with_settings(NetSettings::default(), Limits::default());
    let options = options();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let mut plugin = runtime.configured_async(config).await?;
        async fn send(
            plugin: &mut alert_handler_host::Instance,
            event: &AlertEvent,
            options: &[(String, String)],
        ) {
            plugin
                .handle_alert_async(event, options)
                .await
                .expect("no trap")
                .expect("delivered");
        }
        for _ in 0..(posts / 10).max(50) {
            send(&mut plugin, event, &options).await;
        }
        let batch = (posts / 7).max(1);
        let mut best = Duration::MAX;
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..batch {
                send(&mut plugin, event, &options).await;
            }
            best = best.min(t.elapsed() / batch as u32);
        }
        Ok(best)
    })
}

/// The host's own client (`NetPolicy::send`, what the component's requests
/// go through) posting the same payload without the component: on one
/// current-thread runtime, and the way wasmtime's synchronous WASI HTTP
/// drives it (the caller's thread blocks in `block_on` on wasmtime-wasi's
/// multi-threaded runtime, whose workers run the connection). Alerts/s.
fn host_client(base: &str, body: &str, posts: usize) -> Result<(f64, f64)> {
    use alert_handler_host::net::NetPolicy;
    let new_policy = || -> Result<std::sync::Arc<NetPolicy>> {
        Ok(std::sync::Arc::new(
            NetPolicy::open(&NetSettings::default()).map_err(|e| anyhow::anyhow!(e))?,
        ))
    };
    let url = format!("{base}/api/chat.postMessage");
    let post = |policy: &std::sync::Arc<NetPolicy>| {
        let body = http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(
            Full::new(Bytes::from(body.to_string())),
            |never: std::convert::Infallible| match never {},
        ));
        let request = hyper::Request::post(&url)
            .header("content-type", "application/json")
            .header("authorization", "Bearer xoxb-bench")
            .body(body)
            .expect("a valid request");
        let sending = policy.send(request, None);
        async move {
            let response = sending.await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            http_body_util::BodyExt::collect(response.into_body())
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            anyhow::Ok(())
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // All posts inside one `block_on`, as the hyper floor does. Each case
    // has its own pool: a connection belongs to the runtime that made it.
    let policy = new_policy()?;
    let one_thread = runtime.block_on(async {
        for _ in 0..50 {
            post(&policy).await?;
        }
        let batch = (posts / 7).max(1);
        let mut best = Duration::MAX;
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..batch {
                post(&policy).await?;
            }
            best = best.min(t.elapsed() / batch as u32);
        }
        anyhow::Ok(best)
    })?;
    let policy = new_policy()?;
    let blocking = per_call(posts, || {
        wasmtime_wasi::runtime::in_tokio(post(&policy)).expect("posted");
    });
    Ok((1.0 / one_thread.as_secs_f64(), 1.0 / blocking.as_secs_f64()))
}
