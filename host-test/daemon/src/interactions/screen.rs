//! The Request URL's doorman. `POST /slack/interactions` needs no bearer
//! token (Slack cannot send one), so anyone who can reach serve can post
//! to it. The component verifies every request's signature and stays the
//! authority; this is only a cheap screen in front of it, so a refused
//! request costs the server almost nothing:
//!
//! - on its head alone, before the body is read and before any instance
//!   is taken: without both `X-Slack-Signature` (`v0=` and 64 hex digits)
//!   and `X-Slack-Request-Timestamp` → `401` (`unsigned`); a timestamp
//!   more than the component's [`MAX_AGE`] (300 s) from now → `401`
//!   (`stale`); a `Content-Length` over the largest click this handler's
//!   messages can bring ([`MAX_CLICK_BYTES`], `--max-click-kib`) → `413`
//!   (`too-large`), as is a body that grows past it while read;
//! - verifications in flight (the body read, then the component's check)
//!   are at most `--max-verifications`; past it `429` with `Retry-After`
//!   (`busy`), before reading anything;
//! - what the component refuses (a wrong signature) is `unverified`.
//!
//! Each refusal is counted in `/metrics` by reason
//! (`slack_handler_interactions_refused_total{reason=…}`, and in
//! `slack_handler_interactions_total{outcome="refused"}`), and logged at
//! most once per [`QUIET`] with how many there were: a flood is a line
//! every 10 s, not a line a request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, CONTENT_LENGTH};
use tracing::warn;

use crate::metrics::Metrics;

/// How far a request's timestamp may be from now, in seconds: the
/// component's own window, the one rule in one place.
pub const MAX_AGE: i64 = slack_alert_handler::interaction::MAX_AGE;

/// The largest request body a click on this handler's messages can be:
/// 16 MiB. A `block_actions` payload carries the whole clicked message, so
/// it is sized from the largest message the component posts — a Block Kit
/// message at the component's own limits: the top-level text and the
/// fallback (40,000 characters each), a header (150), a section (3,000),
/// 44 sections of 10 fields of 2,000 characters and the line saying more
/// were cut (the 50 blocks less the header, text, context and actions), a
/// context (footer 300, link), and 21 buttons whose values are 2,000
/// characters — about 1,010,000 characters, each at worst 16 bytes in
/// Slack's form (a character outside the BMP: `\ud83d\ude00` in Slack's
/// JSON, then URL-encoded as `payload=…`), with the envelope's fields. The
/// test `the_largest_click_fits` renders that message with the component
/// and measures it (15.7 MiB). Clicks on ordinary messages are a few KiB.
pub const MAX_CLICK_BYTES: usize = 16 * 1024 * 1024;

/// Verifications in flight at once, by default (`--max-verifications`).
pub const MAX_VERIFICATIONS: usize = 8;

/// At most one log line of refusals this often.
pub const QUIET: Duration = Duration::from_secs(10);

/// Why a request to the Request URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Without both signature headers, or a signature not `v0=` and hex.
    Unsigned,
    /// A timestamp that is not a number, or more than [`MAX_AGE`] from now.
    Stale,
    /// A body over the click limit.
    TooLarge,
    /// Every verification slot was taken.
    Busy,
    /// Read and refused by the component (a wrong signature, no section
    /// with a signing secret).
    Unverified,
}

impl Reason {
    const ALL: [Reason; 5] = [
        Reason::Unsigned,
        Reason::Stale,
        Reason::TooLarge,
        Reason::Busy,
        Reason::Unverified,
    ];

    /// Its label in `/metrics` and in the log.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Unsigned => "unsigned",
            Reason::Stale => "stale",
            Reason::TooLarge => "too-large",
            Reason::Busy => "busy",
            Reason::Unverified => "unverified",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Screens a request on its head at `now` (Unix seconds): `Err` with why
/// it cannot be a click Slack signed, without reading its body.
pub fn screen(headers: &HeaderMap, now: i64, max_body: usize) -> Result<(), Reason> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let (Some(timestamp), Some(signature)) = (
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
    ) else {
        return Err(Reason::Unsigned);
    };
    let hex = signature.strip_prefix("v0=").unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Reason::Unsigned);
    }
    match timestamp.parse::<i64>() {
        Ok(at) if now.abs_diff(at) <= MAX_AGE.unsigned_abs() => {}
        _ => return Err(Reason::Stale),
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(Reason::TooLarge);
    }
    Ok(())
}

/// Refusals counted since the last line, and the last one's why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    counts: [u64; Reason::ALL.len()],
    last: String,
}

impl Tally {
    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// How many of `reason`.
    pub fn of(&self, reason: Reason) -> u64 {
        self.counts[reason.index()]
    }
}

/// When to log what the quiet window holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// Now, this.
    Now(Tally),
    /// At this instant (call [`Quiet::due`] then); nothing is scheduled yet.
    At(Instant),
    /// A line is already due later.
    Waiting,
    /// Nothing to say.
    Nothing,
}

/// The log's core: at most one line per `window`, saying how many were
/// refused since the last; the clock is given.
#[derive(Debug)]
pub struct Quiet {
    window: Duration,
    logged: Option<Instant>,
    tally: Tally,
    due: bool,
}

impl Quiet {
    pub fn new(window: Duration) -> Quiet {
        Quiet {
            window,
            logged: None,
            tally: Tally::default(),
            due: false,
        }
    }

    /// A refusal for `reason` (`why` in words) at `now`.
    pub fn note(&mut self, reason: Reason, why: &str, now: Instant) -> Line {
        self.tally.counts[reason.index()] += 1;
        if self.tally.last != why {
            self.tally.last = why.to_string();
        }
        match self.logged {
            Some(at) if now.duration_since(at) < self.window => {
                if self.due {
                    Line::Waiting
                } else {
                    self.due = true;
                    Line::At(at + self.window)
                }
            }
            _ => {
                self.logged = Some(now);
                Line::Now(std::mem::take(&mut self.tally))
            }
        }
    }

    /// The line that was due at `now`: what was refused since the last,
    /// or, when a line was said meanwhile, when to look again.
    pub fn due(&mut self, now: Instant) -> Line {
        if let Some(at) = self
            .logged
            .filter(|at| now.duration_since(*at) < self.window)
        {
            return Line::At(at + self.window);
        }
        self.due = false;
        if self.tally.total() == 0 {
            return Line::Nothing;
        }
        self.logged = Some(now);
        Line::Now(std::mem::take(&mut self.tally))
    }
}

/// Counts refusals and logs them quietly.
pub struct Refusals {
    metrics: Arc<Metrics>,
    quiet: Mutex<Quiet>,
}

impl Refusals {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Refusals> {
        Arc::new(Refusals {
            metrics,
            quiet: Mutex::new(Quiet::new(QUIET)),
        })
    }

    /// A request refused for `reason` (`why`: words for the log, never a
    /// secret): counted, and logged now or with the next line.
    pub fn refused(self: &Arc<Self>, reason: Reason, why: &str) {
        self.metrics.interaction_refused(reason.label());
        let line = self.lock().note(reason, why, Instant::now());
        match line {
            Line::Now(tally) => log(&tally),
            Line::Waiting | Line::Nothing => {}
            Line::At(mut at) => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    // No runtime to wait on: said with the next refusal.
                    self.lock().due = false;
                    return;
                };
                let this = self.clone();
                runtime.spawn(async move {
                    loop {
                        tokio::time::sleep_until(at.into()).await;
                        let due = this.lock().due(Instant::now());
                        match due {
                            Line::Now(tally) => log(&tally),
                            Line::At(later) => {
                                at = later;
                                continue;
                            }
                            Line::Waiting | Line::Nothing => {}
                        }
                        break;
                    }
                });
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Quiet> {
        self.quiet.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn log(tally: &Tally) {
    warn!(
        refused = tally.total(),
        unsigned = tally.of(Reason::Unsigned),
        stale = tally.of(Reason::Stale),
        too_large = tally.of(Reason::TooLarge),
        busy = tally.of(Reason::Busy),
        unverified = tally.of(Reason::Unverified),
        last = tally.last,
        "requests to /slack/interactions refused (one line at most every 10 s; each is counted in slack_handler_interactions_refused_total)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW: i64 = 1_764_460_800;

    fn head(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn a_request_without_both_signature_headers_is_unsigned() {
        let at = NOW.to_string();
        for pairs in [
            vec![],
            vec![("x-slack-signature", SIGNATURE)],
            vec![("x-slack-request-timestamp", at.as_str())],
            vec![
                ("x-slack-request-timestamp", at.as_str()),
                ("x-slack-signature", "v1=abc"),
            ],
            vec![
                ("x-slack-request-timestamp", at.as_str()),
                ("x-slack-signature", &SIGNATURE[..60]),
            ],
        ] {
            assert_eq!(
                screen(&head(&pairs), NOW, 1024),
                Err(Reason::Unsigned),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a_timestamp_outside_the_components_window_is_stale() {
        for (at, verdict) in [
            (NOW - 300, Ok(())),
            (NOW + 300, Ok(())),
            (NOW - 301, Err(Reason::Stale)),
            (NOW + 301, Err(Reason::Stale)),
            (i64::MIN, Err(Reason::Stale)),
        ] {
            let at = at.to_string();
            let pairs = [
                ("x-slack-request-timestamp", at.as_str()),
                ("x-slack-signature", SIGNATURE),
            ];
            assert_eq!(screen(&head(&pairs), NOW, 1024), verdict, "{at}");
        }
        let pairs = [
            ("x-slack-request-timestamp", "soon"),
            ("x-slack-signature", SIGNATURE),
        ];
        assert_eq!(screen(&head(&pairs), NOW, 1024), Err(Reason::Stale));
    }

    #[test]
    fn a_declared_body_over_the_limit_is_too_large() {
        let at = NOW.to_string();
        let signed = |length: &str| {
            head(&[
                ("x-slack-request-timestamp", at.as_str()),
                ("x-slack-signature", SIGNATURE),
                ("content-length", length),
            ])
        };
        assert_eq!(screen(&signed("1024"), NOW, 1024), Ok(()));
        assert_eq!(screen(&signed("1025"), NOW, 1024), Err(Reason::TooLarge));
    }

    #[test]
    fn refusals_are_one_line_a_window_with_their_count() {
        let mut quiet = Quiet::new(QUIET);
        let t0 = Instant::now();
        let Line::Now(first) = quiet.note(Reason::Unsigned, "no headers", t0) else {
            panic!("the first refusal is said at once");
        };
        assert_eq!((first.total(), first.of(Reason::Unsigned)), (1, 1));
        let due = match quiet.note(Reason::Stale, "old", t0 + Duration::from_secs(1)) {
            Line::At(due) => due,
            other => panic!("{other:?}"),
        };
        assert_eq!(due, t0 + QUIET);
        for i in 0..498 {
            let now = t0 + Duration::from_millis(1000 + i);
            assert_eq!(
                quiet.note(Reason::Unsigned, "no headers", now),
                Line::Waiting
            );
        }
        let Line::Now(tally) = quiet.due(due) else {
            panic!("what the window held is said when it ends");
        };
        assert_eq!(tally.total(), 499);
        assert_eq!(tally.of(Reason::Stale), 1);
        assert_eq!(tally.last, "no headers");
        assert_eq!(quiet.due(due + QUIET), Line::Nothing, "nothing since");
        // Quiet for a window: the next is said at once.
        let later = due + QUIET + Duration::from_secs(1);
        assert!(matches!(
            quiet.note(Reason::Busy, "busy", later),
            Line::Now(t) if t.total() == 1
        ));
    }

    #[test]
    fn a_line_said_meanwhile_puts_the_due_one_off() {
        let mut quiet = Quiet::new(QUIET);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert!(matches!(
            quiet.note(Reason::Unsigned, "a", t0),
            Line::Now(_)
        ));
        assert_eq!(
            quiet.note(Reason::Unsigned, "a", t0 + s(1)),
            Line::At(t0 + QUIET)
        );
        // The window ends before the line due is said: the next refusal
        // says both at once.
        let said = t0 + QUIET + s(2);
        assert!(matches!(
            quiet.note(Reason::Unsigned, "a", said),
            Line::Now(t) if t.total() == 2
        ));
        // The line due, late, waits for that line's window.
        assert_eq!(quiet.due(said), Line::At(said + QUIET));
        assert_eq!(quiet.due(said + QUIET), Line::Nothing);
    }

    /// Slack's JSON, as its payloads are written: every character outside
    /// ASCII as `\uXXXX` (UTF-16), `/` as `\/`.
    fn as_slack_writes(value: &serde_json::Value) -> String {
        let mut out = String::new();
        for c in value.to_string().chars() {
            match c {
                '/' => out.push_str("\\/"),
                c if c.is_ascii() => out.push(c),
                c => {
                    for unit in c.encode_utf16(&mut [0; 2]) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out
    }

    /// `payload=` and the text, form-encoded as Slack posts it.
    fn form(text: &str) -> String {
        let mut out = String::from("payload=");
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    /// The largest message the component posts (Block Kit, every part at
    /// its limit, in characters that cost the most once Slack writes them:
    /// outside the BMP), clicked, as Slack posts the click back: its
    /// `block_actions` payload carries the whole message, with the fields
    /// Slack adds to it.
    #[test]
    fn the_largest_click_fits() {
        use serde_json::{json, Value};
        use slack_alert_handler::{alert_json, config::Config, handler};

        let wide = |n: usize| "\u{1F600}".repeat(n);
        let durations: Vec<String> = (1..=20).map(|s| format!("{s}s")).collect();
        let config = Config::parse(&format!(
            "[[slack]]\nenabled = true\ndefault = true\nworkspace = \"w\"\n\
             url = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-1\"\n\
             channel = \"#c\"\nlayout = \"blocks\"\nmention = \"here\"\n\
             actions = \"acknowledge,silence\"\nsilence-durations = \"{}\"\n\
             pretext = \"{{{{message}}}}\"\ntitle = \"{{{{message}}}}\"\n\
             text = \"{{{{message}}}}\"\nfooter = \"{{{{message}}}}\"\n\
             title-link = \"{{{{tags.link}}}}\"\n",
            durations.join(",")
        ))
        .unwrap();
        // 460 tags: more fields than 44 sections of 10 hold. The link is
        // at Slack's 3,000 characters of a context element.
        let mut tags: serde_json::Map<String, Value> = (0..460)
            .map(|i| (format!("t{i:03}"), json!(wide(2_000))))
            .collect();
        tags.insert("link".into(), json!(wide(2_990)));
        let alert = json!({"id": "cpu", "message": wide(45_000), "level": "CRITICAL",
            "time": "2026-11-30T10:00:00Z",
            "data": {"series": [{"name": "cpu", "tags": tags}]}});
        let event = alert_json::decode(&alert.to_string()).unwrap();
        let key = wide(2_000);
        let prepared =
            handler::prepare_alert(&config, &event, &[("alert-key".into(), key.clone())]).unwrap();
        let mut message: Value = serde_json::from_slice(&prepared.request.body).unwrap();
        let blocks = message["attachments"][0]["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 50, "every block Slack takes");
        let buttons = blocks[49]["elements"].as_array().unwrap().len();
        assert_eq!(buttons, 21);

        // What Slack adds to a message it keeps.
        fn slack_keeps(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    if map.get("type") == Some(&json!("mrkdwn")) {
                        map.insert("verbatim".into(), json!(false));
                    }
                    let is_block = map
                        .get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| ["header", "section", "context", "actions"].contains(&t));
                    if is_block && !map.contains_key("block_id") {
                        map.insert("block_id".into(), json!("AbCdE"));
                    }
                    map.values_mut().for_each(slack_keeps);
                }
                Value::Array(items) => items.iter_mut().for_each(slack_keeps),
                _ => {}
            }
        }
        slack_keeps(&mut message);
        let kept = message.as_object_mut().unwrap();
        kept.remove("channel");
        for (k, v) in [
            ("type", json!("message")),
            ("subtype", json!("bot_message")),
            ("ts", json!("1764460800.000100")),
            ("bot_id", json!("B0123456789")),
            ("app_id", json!("A0123456789")),
            ("team", json!("T0123456789")),
            (
                "bot_profile",
                json!({"id": "B0123456789", "deleted": false, "name": "slack-alertd",
                "updated": 1764460800, "app_id": "A0123456789",
                "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png",
                    "image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png",
                    "image_72": "https://a.slack-edge.com/80588/img/plugins/app/service_72.png"},
                "team_id": "T0123456789"}),
            ),
        ] {
            kept.insert(k.into(), v);
        }
        let payload = json!({
            "type": "block_actions",
            "user": {"id": "U0123456789", "username": "on-call", "name": "on-call", "team_id": "T0123456789"},
            "api_app_id": "A0123456789",
            "token": "Shh_It_Is_A_Verification_Token",
            "container": {"type": "message", "message_ts": "1764460800.000100",
                "attachment_id": 1, "channel_id": "C0123456789", "is_ephemeral": false, "is_app_unfurl": false},
            "trigger_id": "1234567890123.1234567890123.0123456789abcdef0123456789abcdef",
            "team": {"id": "T0123456789", "domain": "example-workspace-name"},
            "enterprise": null, "is_enterprise_install": false,
            "channel": {"id": "C0123456789", "name": "alerts-of-the-whole-company"},
            "message": message,
            "state": {"values": {}},
            "response_url": "https://hooks.slack.com/actions/T0123456789/1234567890123/0123456789abcdefABCDEF01",
            "actions": [{"action_id": "silence:20s", "block_id": "alert-actions",
                "text": {"type": "plain_text", "text": "Silence 20s", "emoji": true},
                "value": key, "type": "button", "action_ts": "1764460800.123456"}],
        });
        let body = form(&as_slack_writes(&payload));
        let mib = body.len() as f64 / (1024.0 * 1024.0);
        println!("the largest click: {} bytes ({mib:.2} MiB)", body.len());
        assert!(body.len() <= MAX_CLICK_BYTES, "{} bytes", body.len());
        assert!(
            body.len() > MAX_CLICK_BYTES / 10 * 9,
            "the limit is sized from the largest click, not far above it: {} bytes",
            body.len()
        );
    }
}
