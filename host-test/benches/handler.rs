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
//! `--quick` runs fewer iterations.

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
    let quick = std::env::args().any(|a| a == "--quick");
    let (guest_calls, posts) = if quick { (2_000, 300) } else { (20_000, 2_000) };
    let wasm = Path::new(COMPONENT_PATH);
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
    cache::load(host.engine(), wasm, &cache_dir)?;
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
    // and for Block Kit with templates (compiled once; rendered per alert).
    let mut plugin = runtime.instantiate()?;
    plugin
        .configure(&text)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let native_config =
        slack_alert_handler::config::Config::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut native_event = slack_alert_handler::event::AlertEvent::with_message(
        MESSAGE,
        slack_alert_handler::event::Level::Critical,
    );
    native_event.id = "cpu:host=web-01".into();
    native_event.tags = vec![("host".into(), "web-01".into())];
    let event = event();
    println!("guest work per alert (choose workspace, render, build request):");
    for (layout, options) in [("kapacitor", options()), ("blocks", blocks_options())] {
        for _ in 0..200 {
            plugin
                .preview_alert(&event, &options)?
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        let t = Instant::now();
        for _ in 0..guest_calls {
            plugin
                .preview_alert(&event, &options)?
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        let in_wasm = t.elapsed() / guest_calls as u32;
        let prepare = || {
            slack_alert_handler::handler::prepare_alert(&native_config, &native_event, &options)
                .expect("prepares")
                .request
                .preview()
        };
        for _ in 0..200 {
            std::hint::black_box(prepare());
        }
        let t = Instant::now();
        for _ in 0..guest_calls * 5 {
            std::hint::black_box(prepare());
        }
        let native = t.elapsed() / (guest_calls * 5) as u32;
        println!(
            "  {layout:<9} in wasmtime (preview-alert, incl. the WIT call): {:.2} µs; native Rust (opt-level 3): {:.2} µs; wasm / native {:.1}x",
            in_wasm.as_secs_f64() * 1e6,
            native.as_secs_f64() * 1e6,
            in_wasm.as_secs_f64() / native.as_secs_f64()
        );
    }
    println!();
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
        let t = Instant::now();
        for _ in 0..posts {
            let response = post().await?;
            http_body_util::BodyExt::collect(response.into_body()).await?;
        }
        Ok(per_second(posts, t.elapsed()))
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
