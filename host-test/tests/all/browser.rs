//! The HTML preview in a real browser: headless Chromium (Debian's
//! `chromium`; `scripts/test.sh` installs it) loads the pages `host-test
//! preview` writes for the examples, and a probe script, added to a copy of
//! each page, reports what the browser rendered: the header's text, each
//! colour bar's computed colour, how many fields, the text shown, how many
//! mentions. With no browser the test fails, naming what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The browser: `$CHROMIUM`, else `chromium`, `chromium-browser` or
/// `google-chrome` on the PATH.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !found.is_empty() {
                return PathBuf::from(found);
            }
        }
    }
    panic!(
        "no browser: this test needs headless Chromium (Debian's `chromium` package; scripts/test.sh installs it, or set CHROMIUM=/path/to/chrome)"
    );
}

const PROBE: &str = r#"<script>
document.addEventListener('DOMContentLoaded', () => {
  const header = document.querySelector('.header');
  const report = {
    header: header ? header.textContent : null,
    bars: [...document.querySelectorAll('.attachment')].map(a => getComputedStyle(a).borderLeftColor),
    fields: document.querySelectorAll('.field').length,
    text: [...document.querySelectorAll('.toptext, .text')].map(e => e.textContent),
    mentions: document.querySelectorAll('.mention').length,
    unsupported: document.querySelectorAll('.unsupported').length,
    buttons: [...document.querySelectorAll('.button')].map(b => b.textContent),
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(report);
  document.body.appendChild(pre);
});
</script>"#;

/// Previews `alert` with `config` and `options`, renders it in Chromium,
/// and returns the probe's report.
fn rendered(config: &str, alert: &str, options: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("preview.html");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-test"));
    cmd.current_dir(repo())
        .args(["preview", "--config", config, "--alert", alert, "--html"])
        .arg(&page);
    for option in options {
        cmd.args(["--option", option]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<script"),
        "the preview itself has no script"
    );
    assert!(!html.contains("mY5uP3Rs3CrE7t0keN"), "no token in the page");
    let probed = dir.path().join("probed.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{PROBE}</body>"))).unwrap();
    let browser = chromium();
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("file://{}", probed.display()))
        .output()
        .unwrap_or_else(|e| panic!("starting {}: {e}", browser.display()));
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"probe\">").unwrap_or_else(|| {
        panic!(
            "{} rendered no probe report (exit {:?}): {}",
            browser.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    }) + "<pre id=\"probe\">".len();
    let end = dom[start..].find("</pre>").unwrap() + start;
    let json = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

#[test]
fn each_levels_colour_bar_as_the_browser_draws_it() {
    for (alert, colour) in [
        ("examples/alerts/cpu-critical.json", "rgb(163, 2, 0)"),
        ("examples/alerts/cpu-warning.json", "rgb(218, 160, 56)"),
        ("examples/alerts/cpu-recovered.json", "rgb(46, 184, 134)"),
    ] {
        let page = rendered("examples/kapacitor.conf", alert, &[]);
        assert_eq!(page["bars"], serde_json::json!([colour]), "{alert}: {page}");
        assert_eq!(page["unsupported"], 0, "{page}");
    }
}

#[test]
fn block_kit_shows_its_header_and_fields() {
    let page = rendered(
        "examples/slack-rendered.conf",
        "examples/alerts/cpu-critical.json",
        &["layout=blocks", "mention=here"],
    );
    let header = page["header"].as_str().unwrap_or_default();
    assert!(header.ends_with("CRITICAL: cpu"), "{page}");
    assert_eq!(page["fields"], 2, "{page}");
    assert_eq!(page["mentions"], 1, "the @here: {page}");
    assert_eq!(
        page["bars"],
        serde_json::json!(["rgb(163, 2, 0)"]),
        "{page}"
    );
    assert_eq!(page["unsupported"], 0, "{page}");

    let page = rendered(
        "examples/slack-rendered.conf",
        "examples/alerts/cpu-critical.json",
        &["layout=attachment"],
    );
    // slack-rendered.conf's two fields, short: side by side.
    assert_eq!(page["fields"], 2, "{page}");
}

#[test]
fn the_buttons_show_inside_the_colour_bar_and_an_acknowledgement_drops_its_own() {
    let page = rendered(
        "examples/slack-buttons.conf",
        "examples/alerts/cpu-critical.json",
        &[],
    );
    assert_eq!(
        page["buttons"],
        serde_json::json!(["Acknowledge", "Silence 1h", "Silence 1d"]),
        "{page}"
    );
    assert_eq!(
        page["bars"],
        serde_json::json!(["rgb(163, 2, 0)"]),
        "{page}"
    );
    assert_eq!(page["unsupported"], 0, "{page}");
    let page = rendered(
        "examples/slack-buttons.conf",
        "examples/alerts/cpu-critical.json",
        &["acknowledged-by=U024BE7LH", "acknowledged-at=1764460800"],
    );
    assert_eq!(
        page["buttons"],
        serde_json::json!(["Silence 1h", "Silence 1d"]),
        "{page}"
    );
    assert_eq!(page["mentions"], 1, "the acknowledger: {page}");
    let page = rendered(
        "examples/slack-buttons.conf",
        "examples/alerts/cpu-recovered.json",
        &[],
    );
    assert_eq!(
        page["buttons"],
        serde_json::json!([]),
        "none when recovered: {page}"
    );
}

#[test]
fn alert_data_that_looks_like_a_mention_shows_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let alert = dir.path().join("sneaky.json");
    std::fs::write(
        &alert,
        r#"{"id":"cpu:nil","message":"<!channel> & <b>co</b>","time":"2026-11-26T10:00:00Z","level":"CRITICAL"}"#,
    )
    .unwrap();
    // The templated layouts escape alert data (`&lt;!channel&gt;` on the
    // wire): the browser shows it as typed, not as a mention.
    let page = rendered(
        "examples/slack-rendered.conf",
        alert.to_str().unwrap(),
        &["layout=attachment"],
    );
    // One mention: the configuration's @here, not the alert's text.
    assert_eq!(page["mentions"], 1, "{page}");
    assert_eq!(page["text"][0], "@here", "{page}");
    assert!(
        page["text"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "<!channel> & <b>co</b>"),
        "{page}"
    );
    // Kapacitor's own layout sends the message as it is, as Kapacitor does:
    // Slack (and the preview) then shows a real @channel.
    let page = rendered("examples/kapacitor.conf", alert.to_str().unwrap(), &[]);
    assert_eq!(page["mentions"], 1, "{page}");
}
