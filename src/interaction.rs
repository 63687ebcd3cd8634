//! A click on one of an alert's buttons, as Slack posts it to the app's
//! Request URL: verified by its signature under a workspace's signing
//! secret, then read. Slack's rules live here, beside the rest of Slack;
//! the host only passes the request on and does what it asks.
//!
//! - `X-Slack-Signature` must be `v0=` and the hex HMAC-SHA256 of
//!   `v0:<X-Slack-Request-Timestamp>:<raw body>` under a section's
//!   `signing-secret`, compared in constant time, and the timestamp within
//!   [`MAX_AGE`] seconds of now (a replay later is refused).
//! - The body is Slack's form, `payload=<JSON>`, of type `block_actions`;
//!   each button's `action_id` says what it asks (`acknowledge`,
//!   `silence:<duration>`, `unsilence`) and its `value` names the alert.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{Config, Secret};
use crate::error::HandlerError;
use crate::payload::{method_url, Request};
use crate::timefmt;
use crate::weburl::WebUrl;

/// How far a request's timestamp may be from now, in seconds.
pub const MAX_AGE: i64 = 300;

/// What a button asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    /// Silence the alert for this many seconds.
    Silence(u64),
    Unsilence,
}

/// A verified click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// The section whose signing secret verified it.
    pub workspace: String,
    /// The alert the button names (its `value`: the key the host keeps the
    /// alert's message under).
    pub alert: String,
    pub action: Action,
    /// Who clicked: Slack's user id.
    pub user: String,
    /// Who clicked, by name (`user.username`, else `user.name`).
    pub user_name: Option<String>,
    /// The message clicked: its channel id and `ts`.
    pub channel_id: String,
    pub ts: String,
    /// A link to the message clicked ([`permalink`]), when the payload
    /// names the workspace's domain.
    pub message_link: Option<String>,
    /// Where to answer the user alone (`response_url`).
    pub response_url: Option<String>,
    /// Slack's identity of this click (`trigger_id` and the action's
    /// `action_ts`; a digest of the payload when it carries neither): the
    /// same click sent again has the same one.
    pub identity: String,
    /// The Slack workspace it came from (`team.id`, `team.domain`), which
    /// must name the section that takes it ([`section_for`]).
    pub team: (String, String),
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A verified click: do what it asks.
    Act(Box<Interaction>),
    /// Signed, but not a click this handler takes: answer `200`, log why.
    Ignore(String),
    /// Not verified (no or a wrong signature, a stale timestamp): answer
    /// `401`, change nothing.
    Refuse(String),
}

/// Verifies and reads a request Slack posted (`headers` as received, any
/// case; `body` raw), at `now` (Unix seconds).
pub fn read(config: &Config, headers: &[(String, String)], body: &[u8], now: i64) -> Outcome {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let (Some(timestamp), Some(signature)) = (
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
    ) else {
        return Outcome::Refuse(
            "not signed: X-Slack-Request-Timestamp and X-Slack-Signature are required".into(),
        );
    };
    let Ok(at) = timestamp.parse::<i64>() else {
        return Outcome::Refuse("X-Slack-Request-Timestamp is not a number of seconds".into());
    };
    if (now - at).abs() > MAX_AGE {
        return Outcome::Refuse(format!(
            "X-Slack-Request-Timestamp is {} s from now, more than {MAX_AGE}: stale or replayed",
            (now - at).abs()
        ));
    }
    let Some(expected) = signature.strip_prefix("v0=").and_then(unhex) else {
        return Outcome::Refuse("X-Slack-Signature is not v0= and 64 hex digits".into());
    };
    let mut secrets = config
        .workspaces
        .iter()
        .filter(|ws| !ws.signing_secret.is_empty())
        .peekable();
    if secrets.peek().is_none() {
        return Outcome::Refuse(
            "no [[slack]] section has a signing-secret: this handler takes no interactions".into(),
        );
    }
    // Every section whose secret verifies it: one app installed in two
    // workspaces signs both with one secret; the click's team picks.
    let signed: Vec<&crate::config::Workspace> = secrets
        .filter(|ws| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(ws.signing_secret.expose().as_bytes())
            else {
                return false;
            };
            mac.update(b"v0:");
            mac.update(timestamp.as_bytes());
            mac.update(b":");
            mac.update(body);
            // Constant time.
            mac.verify_slice(&expected).is_ok()
        })
        .collect();
    if signed.is_empty() {
        return Outcome::Refuse("X-Slack-Signature matches no section's signing-secret".into());
    }
    let with_secret = config
        .workspaces
        .iter()
        .filter(|ws| !ws.signing_secret.is_empty())
        .count();
    match click(body) {
        Ok(interaction) => taken_by(interaction, &signed, with_secret),
        Err(why) => Outcome::Ignore(why),
    }
}

/// The click, named by the section among `candidates` whose `workspace`
/// names the Slack workspace it came from: its `team.id` (`T0123`), its
/// domain (`example`), or `example.slack.com`. A section without
/// `workspace` takes it only when it is the only section of its kind
/// (`of_kind`: sections with a signing secret, or able to open Socket
/// Mode): otherwise one workspace's click could act on another's alerts.
fn taken_by(
    mut interaction: Interaction,
    candidates: &[&crate::config::Workspace],
    of_kind: usize,
) -> Outcome {
    match section_for(&interaction.team, candidates, of_kind) {
        Some(ws) => {
            interaction.workspace = ws.id.clone();
            Outcome::Act(Box::new(interaction))
        }
        None => {
            let (id, domain) = &interaction.team;
            Outcome::Ignore(format!(
                "the click comes from the Slack workspace `{id}` (domain `{domain}`), which no [[slack]] section able to take it names: set that section's workspace to `{id}`"
            ))
        }
    }
}

/// See [`taken_by`].
pub fn section_for<'a>(
    team: &(String, String),
    candidates: &[&'a crate::config::Workspace],
    of_kind: usize,
) -> Option<&'a crate::config::Workspace> {
    let (id, domain) = team;
    let names = |ws: &crate::config::Workspace| {
        let named = ws.id.as_str();
        !named.is_empty()
            && ((!id.is_empty() && named == id)
                || (!domain.is_empty()
                    && (named.eq_ignore_ascii_case(domain)
                        || named
                            .strip_suffix(".slack.com")
                            .is_some_and(|d| d.eq_ignore_ascii_case(domain)))))
    };
    candidates.iter().copied().find(|ws| names(ws)).or_else(|| {
        candidates
            .iter()
            .copied()
            .find(|ws| ws.id.is_empty() && of_kind == 1)
    })
}

/// The click a signed form body holds (`payload=<JSON>`), or why it holds
/// none this handler takes.
fn click(body: &[u8]) -> Result<Interaction, String> {
    let body = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    let payload = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("payload="))
        .ok_or("the body has no payload= (not an interaction)")?;
    let payload = form_decode(payload).ok_or("payload= is not percent-encoded UTF-8")?;
    // From a slice into a Value, as Slack's answers are read (one
    // deserializer in the component, not two).
    match serde_json::from_slice(payload.as_bytes()) {
        Ok(value @ Value::Object(_)) => from_payload(&value),
        _ => Err("payload is not a JSON object".into()),
    }
}

/// The click an interaction payload (Slack's JSON, from the form or a
/// Socket Mode envelope) holds, or why it holds none this handler takes.
pub fn from_payload(value: &Value) -> Result<Interaction, String> {
    let kind = value["type"].as_str().unwrap_or_default();
    if kind != "block_actions" {
        return Err(format!(
            "an interaction of type `{kind}`, not block_actions"
        ));
    }
    let action = &value["actions"][0];
    let action_id = action["action_id"]
        .as_str()
        .ok_or("actions[0].action_id: missing")?;
    let alert = action["value"]
        .as_str()
        .ok_or("actions[0].value: missing")?;
    let action =
        match action_id {
            ACKNOWLEDGE => Action::Acknowledge,
            UNSILENCE => Action::Unsilence,
            other => match other.strip_prefix(SILENCE) {
                Some(duration) => Action::Silence(timefmt::seconds(duration).ok_or_else(|| {
                    format!("actions[0].action_id: `{other}` does not say how long")
                })?),
                None => {
                    return Err(format!(
                        "actions[0].action_id: `{other}` is not one of ours"
                    ))
                }
            },
        };
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let user = text(&value["user"]["id"]).ok_or("user.id: missing")?;
    let channel_id = text(&value["container"]["channel_id"])
        .or_else(|| text(&value["channel"]["id"]))
        .ok_or("container.channel_id: missing")?;
    let ts = text(&value["container"]["message_ts"])
        .or_else(|| text(&value["message"]["ts"]))
        .ok_or("container.message_ts: missing")?;
    let trigger = text(&value["trigger_id"]);
    let action_ts = text(&value["actions"][0]["action_ts"]);
    let identity = match (trigger, action_ts) {
        (None, None) => {
            let digest = Sha256::digest(value.to_string().as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("payload:{hex}")
        }
        (trigger, action_ts) => format!(
            "{}/{}",
            trigger.unwrap_or_default(),
            action_ts.unwrap_or_default()
        ),
    };
    let team = (
        text(&value["team"]["id"]).unwrap_or_default(),
        text(&value["team"]["domain"]).unwrap_or_default(),
    );
    Ok(Interaction {
        workspace: String::new(),
        alert: alert.to_string(),
        action,
        user,
        user_name: text(&value["user"]["username"]).or_else(|| text(&value["user"]["name"])),
        message_link: permalink(&team.1, &channel_id, &ts),
        channel_id,
        ts,
        response_url: text(&value["response_url"]),
        identity,
        team,
    })
}

/// The link to a message, as Slack's permalinks are made:
/// `https://<domain>.slack.com/archives/<channel>/p<ts without its dot>`.
/// `None` unless the domain, channel and `ts` look like Slack's (so a
/// payload cannot make it point anywhere else).
pub fn permalink(domain: &str, channel_id: &str, ts: &str) -> Option<String> {
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let channel_ok =
        !channel_id.is_empty() && channel_id.bytes().all(|b| b.is_ascii_alphanumeric());
    let (secs, micros) = ts.split_once('.')?;
    let ts_ok = [secs, micros]
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (domain_ok && channel_ok && ts_ok)
        .then(|| format!("https://{domain}.slack.com/archives/{channel_id}/p{secs}{micros}"))
}

/// The `action_id`s of an alert's buttons: what a click asks.
pub const ACKNOWLEDGE: &str = "acknowledge";
pub const UNSILENCE: &str = "unsilence";
/// `silence:` and the duration as configured (`silence:1h`).
pub const SILENCE: &str = "silence:";

/// What a message on the Socket Mode connection asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAnswer {
    /// The envelope's acknowledgement, to send back at once.
    pub reply: Option<String>,
    pub outcome: Outcome,
    /// Slack asks for a new connection (`disconnect`).
    pub reconnect: bool,
}

/// Reads one text message of Slack's Socket Mode connection: `hello`,
/// `disconnect`, or an envelope (acknowledged by its `envelope_id`
/// whatever it holds; an `interactive` one may hold a click). The
/// connection was opened with the app token, so nothing is signed.
pub fn socket_message(config: &Config, text: &str) -> SocketAnswer {
    let answer = |reply, outcome, reconnect| SocketAnswer {
        reply,
        outcome,
        reconnect,
    };
    let value: Value = match serde_json::from_slice(text.as_bytes()) {
        Ok(value @ Value::Object(_)) => value,
        _ => {
            return answer(
                None,
                Outcome::Ignore("a Socket Mode message that is not a JSON object".into()),
                false,
            )
        }
    };
    let kind = value["type"].as_str().unwrap_or_default();
    let reply = value["envelope_id"]
        .as_str()
        .map(|id| format!(r#"{{"envelope_id":{}}}"#, Value::from(id)));
    match kind {
        "hello" => answer(None, Outcome::Ignore("hello".into()), false),
        "disconnect" => answer(
            None,
            Outcome::Ignore(format!(
                "Slack asks for a new connection ({})",
                value["reason"].as_str().unwrap_or("no reason given")
            )),
            true,
        ),
        "interactive" => {
            // Opened with the app token, nothing is signed: the click's
            // team names the section among those with a Web API token.
            let able: Vec<&crate::config::Workspace> = config
                .workspaces
                .iter()
                .filter(|ws| ws.is_web_api())
                .collect();
            let outcome = match from_payload(&value["payload"]) {
                Ok(click) => taken_by(click, &able, able.len()),
                Err(why) => Outcome::Ignore(why),
            };
            answer(reply, outcome, false)
        }
        other => answer(
            reply,
            Outcome::Ignore(format!("a Socket Mode envelope of type `{other}`")),
            false,
        ),
    }
}

/// The section whose Web API serves the app: the default one if it has a
/// token, else the first that has one.
fn app_section(config: &Config) -> Option<&crate::config::Workspace> {
    let with_token = |ws: &&crate::config::Workspace| !ws.token.is_empty() && ws.is_web_api();
    config
        .select("")
        .ok()
        .filter(with_token)
        .or_else(|| config.workspaces.iter().find(with_token))
}

/// The request that asks Slack where to open the Socket Mode connection
/// (`apps.connections.open` with the app-level token, on the Web API of
/// [`app_section`]); [`socket_url`] reads its answer.
pub fn socket_open(config: &Config, app_token: &str) -> Result<Request, HandlerError> {
    let ws = app_section(config).ok_or_else(|| {
        HandlerError::InvalidConfig(
            "Socket Mode needs a [[slack]] section with a `token` (the Web API): none has one"
                .into(),
        )
    })?;
    Ok(Request {
        url: Secret::new(method_url(ws.url.expose(), "apps.connections.open")),
        token: Secret::new(app_token.trim()),
        body: b"{}".to_vec(),
    })
}

/// The WebSocket URL in `apps.connections.open`'s answer (`ok` checked
/// before).
pub fn socket_url(body: &[u8]) -> Result<String, HandlerError> {
    let value: Value = serde_json::from_slice(body).unwrap_or_default();
    match value["url"].as_str() {
        Some(url) if url.starts_with("wss://") || url.starts_with("ws://") => Ok(url.to_string()),
        _ => Err(HandlerError::Internal(
            "apps.connections.open answered without a WebSocket `url`".into(),
        )),
    }
}

/// The ephemeral message that tells the person who clicked, alone, `text`
/// through the click's `response_url` (the clicked message stays as it
/// is).
pub fn notice(response_url: &str, text: &str) -> Result<Request, HandlerError> {
    let scheme = WebUrl::parse(response_url).map(|u| u.scheme);
    if !matches!(scheme.as_deref(), Ok("https" | "http")) {
        return Err(HandlerError::InvalidOption(
            "the click's response_url is not an http(s) URL".into(),
        ));
    }
    Ok(Request {
        url: Secret::new(response_url),
        token: Secret::default(),
        body: format!(
            r#"{{"response_type":"ephemeral","replace_original":false,"text":{}}}"#,
            Value::from(text)
        )
        .into_bytes(),
    })
}

/// Hex digits to bytes (a SHA-256: 32 of them).
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An `application/x-www-form-urlencoded` value: `+` is a space, `%XX` a
/// byte.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const NOW: i64 = 1_764_410_000;

    fn config() -> Config {
        Config::parse(&format!(
            "[[slack]]\nenabled = true\nworkspace = \"alerts\"\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-1\"\nsigning-secret = \"{SECRET}\"\n"
        ))
        .unwrap()
    }

    fn body(action_id: &str) -> String {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U123", "username": "ana"},
            "container": {"type": "message", "message_ts": "1764410000.000100", "channel_id": "C0OPS"},
            "response_url": "https://hooks.slack.com/actions/T1/1/abc",
            "team": {"id": "T0ALERTS", "domain": "alerts"},
            "trigger_id": "1.2.3",
            "actions": [{"action_id": action_id, "value": "[\"cpu\",[]]", "type": "button",
                "action_ts": "1764410000.000200"}],
        })
        .to_string();
        let encoded: String = payload
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                b => format!("%{b:02X}"),
            })
            .collect();
        format!("payload={encoded}")
    }

    fn signed(secret: &str, timestamp: i64, body: &str) -> Vec<(String, String)> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{timestamp}:{body}").as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        vec![
            ("X-Slack-Request-Timestamp".into(), timestamp.to_string()),
            ("x-slack-signature".into(), format!("v0={hex}")),
        ]
    }

    #[test]
    fn a_signed_click_is_read() {
        let b = body("silence:1d");
        match read(&config(), &signed(SECRET, NOW, &b), b.as_bytes(), NOW + 10) {
            Outcome::Act(i) => {
                assert_eq!(i.workspace, "alerts");
                assert_eq!(i.alert, "[\"cpu\",[]]");
                assert_eq!(i.action, Action::Silence(86_400));
                assert_eq!((i.user.as_str(), i.channel_id.as_str()), ("U123", "C0OPS"));
                assert_eq!(i.ts, "1764410000.000100");
                assert!(i.response_url.is_some());
                assert_eq!(i.user_name.as_deref(), Some("ana"));
                assert_eq!(
                    i.message_link.as_deref(),
                    Some("https://alerts.slack.com/archives/C0OPS/p1764410000000100")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_permalink_is_made_only_of_what_looks_like_slacks() {
        assert_eq!(
            permalink("acme-ops", "C0OPS", "1764410000.000100").as_deref(),
            Some("https://acme-ops.slack.com/archives/C0OPS/p1764410000000100")
        );
        for (domain, channel, ts) in [
            ("", "C0OPS", "1764410000.000100"),
            ("evil.example/x?", "C0OPS", "1764410000.000100"),
            ("acme", "C0/../x", "1764410000.000100"),
            ("acme", "C0OPS", "1764410000"),
            ("acme", "C0OPS", "17644.1x"),
        ] {
            assert_eq!(
                permalink(domain, channel, ts),
                None,
                "{domain} {channel} {ts}"
            );
        }
    }

    #[test]
    fn only_a_right_signature_within_five_minutes_is_taken() {
        let b = body("acknowledge");
        let refused = |headers: Vec<(String, String)>, body: &str, now: i64| {
            matches!(
                read(&config(), &headers, body.as_bytes(), now),
                Outcome::Refuse(_)
            )
        };
        assert!(!refused(signed(SECRET, NOW, &b), &b, NOW + MAX_AGE));
        assert!(
            refused(signed("another-secret", NOW, &b), &b, NOW),
            "wrong secret"
        );
        assert!(
            refused(signed(SECRET, NOW, &b), &body("unsilence"), NOW),
            "wrong body"
        );
        assert!(
            refused(signed(SECRET, NOW, &b), &b, NOW + MAX_AGE + 1),
            "stale: 5 min 1 s"
        );
        assert!(refused(vec![], &b, NOW), "missing headers");
        let mut no_signature = signed(SECRET, NOW, &b);
        no_signature.pop();
        assert!(refused(no_signature, &b, NOW), "missing signature");
        // A replay of a valid request, after five minutes.
        assert!(refused(signed(SECRET, NOW, &b), &b, NOW + 301));
        let without = Config::parse(
            "[[slack]]\nenabled = true\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-1\"\n",
        )
        .unwrap();
        match read(&without, &signed(SECRET, NOW, &b), b.as_bytes(), NOW) {
            Outcome::Refuse(why) => assert!(why.contains("no [[slack]] section"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// `body(action)` as sent from another Slack workspace.
    fn from_team(action_id: &str, id: &str, domain: &str) -> String {
        body(action_id)
            .replace("T0ALERTS", id)
            .replace("%22alerts%22", &format!("%22{domain}%22"))
    }

    #[test]
    fn a_click_is_taken_only_by_the_section_naming_its_workspace() {
        // One app (one secret) installed in two workspaces: the team picks.
        let two = Config::parse(&format!(
            "[[slack]]\nenabled = true\ndefault = true\nworkspace = \"T0ONE\"\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-1\"\nsigning-secret = \"{SECRET}\"\n\
             [[slack]]\nenabled = true\nworkspace = \"two.slack.com\"\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-2\"\nsigning-secret = \"{SECRET}\"\n"
        ))
        .unwrap();
        let taken = |b: &str, config: &Config| match read(
            config,
            &signed(SECRET, NOW, b),
            b.as_bytes(),
            NOW,
        ) {
            Outcome::Act(i) => Ok(i.workspace),
            Outcome::Ignore(why) => Err(why),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            taken(&from_team("acknowledge", "T0ONE", "one"), &two),
            Ok("T0ONE".into())
        );
        assert_eq!(
            taken(&from_team("acknowledge", "T0TWO", "two"), &two),
            Ok("two.slack.com".into())
        );
        let why = taken(&from_team("acknowledge", "T0EVIL", "evil"), &two).unwrap_err();
        assert!(
            why.contains("T0EVIL") && why.contains("set that section's workspace"),
            "{why}"
        );
        // A section without `workspace` (the configuration allows it only
        // when it is the only section): it takes its secret's clicks.
        let bare = Config::parse(&format!("[[slack]]\nenabled = true\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-1\"\nsigning-secret = \"{SECRET}\"\n")).unwrap();
        let any = from_team("acknowledge", "T0ANY", "any");
        assert_eq!(taken(&any, &bare), Ok(String::new()));
        // Named by none of the sections verifying it: never the first.
        let without = [&two.workspaces[0]];
        assert!(section_for(&("T0TWO".into(), "two".into()), &without, 2).is_none());
        let unnamed = crate::config::Workspace::default();
        assert!(
            section_for(&("T0TWO".into(), "two".into()), &[&unnamed], 2).is_none(),
            "a section without workspace among several takes nothing"
        );
    }

    #[test]
    fn a_click_sent_again_has_the_same_identity() {
        let b = body("acknowledge");
        let identity =
            |b: &str, at: i64| match read(&config(), &signed(SECRET, at, b), b.as_bytes(), at) {
                Outcome::Act(i) => i.identity,
                other => panic!("{other:?}"),
            };
        assert_eq!(identity(&b, NOW), "1.2.3/1764410000.000200");
        assert_eq!(identity(&b, NOW), identity(&b, NOW + 14));
        let other = b.replace("1.2.3", "1.2.4");
        assert_ne!(identity(&b, NOW), identity(&other, NOW));
        // Neither field: a digest of the payload, as stable.
        let bare = b.replace("trigger_id", "x").replace("action_ts", "y");
        assert!(identity(&bare, NOW).starts_with("payload:"));
        assert_eq!(identity(&bare, NOW), identity(&bare, NOW + 1));
    }

    #[test]
    fn signed_but_unexpected_is_ignored_naming_why() {
        let view = "payload=%7B%22type%22%3A%22view_submission%22%7D";
        match read(&config(), &signed(SECRET, NOW, view), view.as_bytes(), NOW) {
            Outcome::Ignore(why) => assert!(why.contains("view_submission"), "{why}"),
            other => panic!("{other:?}"),
        }
        let b = body("escalate");
        match read(&config(), &signed(SECRET, NOW, &b), b.as_bytes(), NOW) {
            Outcome::Ignore(why) => assert!(why.contains("`escalate`"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn socket_mode_envelopes_are_acknowledged_and_read() {
        let payload: Value = {
            let b = body("acknowledge");
            let json = form_decode(b.strip_prefix("payload=").unwrap()).unwrap();
            serde_json::from_str(&json).unwrap()
        };
        let envelope = serde_json::json!({"envelope_id": "e-1", "type": "interactive",
            "payload": payload, "accepts_response_payload": false})
        .to_string();
        let a = socket_message(&config(), &envelope);
        assert_eq!(a.reply.as_deref(), Some(r#"{"envelope_id":"e-1"}"#));
        assert!(!a.reconnect);
        match a.outcome {
            Outcome::Act(i) => {
                assert_eq!(i.action, Action::Acknowledge);
                // Named by its team, as a signed click is.
                assert_eq!(i.workspace, "alerts");
            }
            other => panic!("{other:?}"),
        }
        let hello = socket_message(&config(), r#"{"type":"hello","num_connections":1}"#);
        assert_eq!((hello.reply, hello.reconnect), (None, false));
        let bye = socket_message(
            &config(),
            r#"{"type":"disconnect","reason":"refresh_requested"}"#,
        );
        assert!(bye.reconnect);
        // Any other envelope is acknowledged and ignored, naming why.
        let other = socket_message(
            &config(),
            r#"{"envelope_id":"e-2","type":"events_api","payload":{}}"#,
        );
        assert_eq!(other.reply.as_deref(), Some(r#"{"envelope_id":"e-2"}"#));
        assert!(matches!(other.outcome, Outcome::Ignore(ref w) if w.contains("events_api")));
        let bad = socket_message(&config(), "not json");
        assert!(matches!(bad.outcome, Outcome::Ignore(_)) && bad.reply.is_none());
    }

    #[test]
    fn the_notice_and_the_socket_open_request_carry_what_slack_needs() {
        let r = notice("https://hooks.slack.com/actions/T1/1/abc", "gone").unwrap();
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["response_type"], "ephemeral");
        assert!(r.token.is_empty());
        assert!(notice("javascript:alert(1)", "x").is_err());
        let open = socket_open(&config(), "xapp-1-A").unwrap();
        assert_eq!(
            open.url.expose(),
            "https://slack.com/api/apps.connections.open"
        );
        assert_eq!(open.token.expose(), "xapp-1-A");
        assert_eq!(
            socket_url(br#"{"ok":true,"url":"wss://wss.slack.com/link/?ticket=1"}"#).unwrap(),
            "wss://wss.slack.com/link/?ticket=1"
        );
        assert!(socket_url(br#"{"ok":true}"#).is_err());
    }
}
