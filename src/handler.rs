//! The handler's operations on plain types: summarise a configuration,
//! prepare the requests for an alert, a storm message or a service test,
//! and turn Slack's answers into a delivery. No I/O: the caller passes in
//! how to send.

use crate::config::{self, Config, Workspace};
use crate::error::HandlerError;
use crate::event::{AlertEvent, Level};
use crate::options::{HandlerOptions, HostOptions, PreviousMessage, TestOptions};
use crate::payload::Request;
use crate::render;
use crate::response::Answer;
use crate::stages::{self, Stage};
use crate::storm::{self, Storm};
use crate::style::{OnRecovery, Style};

/// The handler kind, as a Kapacitor handler file's `kind`.
pub const KIND: &str = "slack";

/// What a host needs to know of one workspace (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSummary {
    pub id: String,
    pub enabled: bool,
    pub is_default: bool,
    pub global: bool,
    pub state_changes_only: bool,
    /// The section's `channel`, when it names one.
    pub channel: Option<String>,
    /// Scheme and authority of the URL.
    pub endpoint: Option<(String, String)>,
    /// The section's `on-recovery` (`new`, `update`, `thread`).
    pub on_recovery: String,
    pub ssl_ca: Option<String>,
    pub ssl_cert: Option<String>,
    pub ssl_key: Option<String>,
    pub insecure_skip_verify: bool,
    /// The section's `storm-after`; 0 for a webhook, which cannot edit a
    /// storm message.
    pub storm_after: u32,
    /// The section's `storm-list`.
    pub storm_list: u32,
}

/// Summarises a configuration for the host.
pub fn summary(config: &Config) -> Vec<WorkspaceSummary> {
    let given = |p: &str| (!p.is_empty()).then(|| p.to_string());
    config
        .workspaces
        .iter()
        .map(|ws| WorkspaceSummary {
            id: ws.id.clone(),
            enabled: ws.enabled,
            is_default: config.is_default(ws),
            global: ws.global,
            state_changes_only: ws.state_changes_only,
            channel: given(&ws.channel),
            endpoint: config::endpoint(ws),
            on_recovery: ws.style.on_recovery().as_str().to_string(),
            ssl_ca: given(&ws.ssl_ca),
            ssl_cert: given(&ws.ssl_cert),
            ssl_key: given(&ws.ssl_key),
            insecure_skip_verify: ws.insecure_skip_verify,
            storm_after: if ws.is_web_api() {
                ws.style.storm_after()
            } else {
                0
            },
            storm_list: ws.style.storm_list(),
        })
        .collect()
}

/// A request ready to send, with where it goes and what follows it.
#[derive(Clone)]
pub struct Prepared {
    pub workspace: String,
    pub channel: String,
    /// The first request: a post, an update, or a reply in a thread.
    pub request: Request,
    /// What the answer to `request` leads to.
    pub then: Then,
    /// The handler's own warnings (cuts, failed templates).
    pub warnings: Vec<String>,
}

/// What comes after the first request, with `on-recovery` `update` or
/// `thread` and the alert's earlier message known.
#[derive(Clone)]
pub enum Then {
    /// A new message: its answer is the delivery.
    Nothing,
    /// `request` edits the earlier message; if Slack no longer has it, the
    /// alert is posted as `fallback`, a new message.
    Updated {
        previous: PreviousMessage,
        fallback: Request,
    },
    /// `request` replies in the earlier message's thread (else `fallback`
    /// is posted); a recovery then updates the parent with `parent`.
    Replied {
        previous: PreviousMessage,
        fallback: Request,
        parent: Option<Request>,
    },
}

/// Slack's answers that mean the earlier message cannot be edited or
/// replied to any more, so a new one is posted instead.
const GONE: [&str; 5] = [
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "thread_not_found",
    "invalid_thread_ts",
];

/// Prepares the requests for an alert with a handler's options.
pub fn prepare_alert(
    config: &Config,
    event: &AlertEvent,
    options: &[(String, String)],
) -> Result<Prepared, HandlerError> {
    let host = HostOptions::parse(options)?;
    let options = HandlerOptions::parse_repeated(options)?;
    stages::end(Stage::Options);
    prepare(config, &options, &host, event)
}

/// Prepares the service test's request.
pub fn prepare_test(
    config: &Config,
    options: &[(String, String)],
) -> Result<Prepared, HandlerError> {
    let test = TestOptions::parse(options)?;
    let event = AlertEvent::with_message(&test.message, test.level);
    prepare(config, &test.handler, &HostOptions::default(), &event)
}

/// Prepares the request for a storm message with a handler's options: an
/// edit of the message at `previous-channel-id`/`previous-ts`, posted anew
/// if Slack no longer has it (not after a click: `refresh`), else a post.
pub fn prepare_storm(
    config: &Config,
    storm: &Storm,
    options: &[(String, String)],
) -> Result<Prepared, HandlerError> {
    let host = HostOptions::parse(options)?;
    let options = HandlerOptions::parse_repeated(options)?;
    let (ws, style) = workspace(config, &options)?;
    if !ws.is_web_api() {
        return Err(HandlerError::InvalidOption(config::webhook_cannot_storm()));
    }
    let drawn = storm::message(ws, &options, &host, &style, storm);
    let post = Request::new(ws, &drawn.message);
    let (request, then) = match &host.previous {
        None => (post, Then::Nothing),
        Some(previous) => {
            let update = Request::update(ws, &drawn.as_update(&previous.channel_id, &previous.ts));
            if host.refresh {
                (update, Then::Nothing)
            } else {
                let previous = previous.clone();
                let fallback = post;
                (update, Then::Updated { previous, fallback })
            }
        }
    };
    Ok(Prepared {
        workspace: ws.id.clone(),
        channel: drawn.message.channel,
        request,
        then,
        warnings: drawn.warnings,
    })
}

/// The workspace the options select and its settings merged with theirs,
/// refused when they ask what the workspace cannot do.
fn workspace<'c>(
    config: &'c Config,
    options: &HandlerOptions,
) -> Result<(&'c Workspace, Style), HandlerError> {
    let ws = config.select(&options.workspace)?;
    let style = ws.style.merged(&options.style);
    style.check_layout().map_err(HandlerError::InvalidOption)?;
    let on_recovery = style.on_recovery();
    if on_recovery != OnRecovery::New && !ws.is_web_api() {
        return Err(HandlerError::InvalidOption(config::webhook_cannot(
            on_recovery,
        )));
    }
    if style.has_buttons() && !ws.is_web_api() {
        return Err(HandlerError::InvalidConfig(config::webhook_cannot_buttons()));
    }
    if let Some(n) = options.style.storm_after.filter(|n| *n > 0) {
        if !ws.is_web_api() {
            return Err(HandlerError::InvalidOption(format!(
                "`storm-after` = {n}: {}; set 0 or leave it out",
                config::webhook_cannot_storm()
            )));
        }
    }
    Ok((ws, style))
}

fn prepare(
    config: &Config,
    options: &HandlerOptions,
    host: &HostOptions,
    event: &AlertEvent,
) -> Result<Prepared, HandlerError> {
    let (ws, style) = workspace(config, options)?;
    let on_recovery = style.on_recovery();
    stages::end(Stage::Select);
    let rendered = render::message(ws, options, host, &style, event);
    stages::end(Stage::Render);
    let post = Request::new(ws, &rendered.message);
    stages::end(Stage::Serialize);
    let (request, then) = match (on_recovery, &host.previous) {
        // After a click: the clicked message edited in place, nothing new
        // posted if it is gone.
        (_, Some(previous)) if host.refresh && ws.is_web_api() => (
            Request::update(ws, &rendered.as_update(&previous.channel_id, &previous.ts)),
            Then::Nothing,
        ),
        (OnRecovery::New, _) | (_, None) => (post, Then::Nothing),
        (OnRecovery::Update, Some(previous)) => (
            Request::update(ws, &rendered.as_update(&previous.channel_id, &previous.ts)),
            Then::Updated {
                previous: previous.clone(),
                fallback: post,
            },
        ),
        (OnRecovery::Thread, Some(previous)) => {
            let mut reply = rendered.message.clone();
            reply.channel = previous.channel_id.clone();
            reply.thread_ts = Some(previous.ts.clone());
            reply.reply_broadcast = style.thread_broadcast.filter(|b| *b);
            let parent = (event.level == Level::Ok).then(|| {
                Request::update(ws, &rendered.as_update(&previous.channel_id, &previous.ts))
            });
            (
                Request::new(ws, &reply),
                Then::Replied {
                    previous: previous.clone(),
                    fallback: post,
                    parent,
                },
            )
        }
    };
    Ok(Prepared {
        workspace: ws.id.clone(),
        channel: rendered.message.channel.clone(),
        request,
        then,
        warnings: rendered.warnings,
    })
}

/// What was delivered (the WIT `delivery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub workspace: String,
    pub channel: String,
    pub channel_id: Option<String>,
    pub ts: Option<String>,
    pub warnings: Vec<String>,
}

impl Prepared {
    /// Sends the prepared requests through `send` (which does the I/O and
    /// classifies Slack's answer) and says what was delivered: for an
    /// update or a reply, the alert's message is the earlier one; when that
    /// is gone, the new message posted instead. The handler's own warnings
    /// come first.
    pub fn deliver(
        self,
        mut send: impl FnMut(&Request) -> Result<Answer, HandlerError>,
    ) -> Result<Delivery, HandlerError> {
        let mut warnings = self.warnings;
        let first = send(&self.request);
        let answer = match self.then {
            Then::Nothing => first?,
            Then::Updated { previous, fallback } => match first {
                Ok(answer) => keep(answer, &previous),
                Err(e) => posted_instead(e, &fallback, &mut send, &mut warnings)?,
            },
            Then::Replied {
                previous,
                fallback,
                parent,
            } => match first {
                Ok(answer) => {
                    if let Some(update) = parent {
                        if let Err(e) = send(&update) {
                            warnings.push(format!("handler_parent_not_updated:{}", code(&e)));
                        }
                    }
                    keep(answer, &previous)
                }
                Err(e) => posted_instead(e, &fallback, &mut send, &mut warnings)?,
            },
        };
        warnings.extend(answer.warnings);
        Ok(Delivery {
            workspace: self.workspace,
            channel: self.channel,
            channel_id: answer.channel_id,
            ts: answer.ts,
            warnings,
        })
    }
}

/// The answer to an update or a reply, naming the alert's message: the
/// earlier one.
fn keep(answer: Answer, previous: &PreviousMessage) -> Answer {
    Answer {
        channel_id: answer
            .channel_id
            .or_else(|| Some(previous.channel_id.clone())),
        ts: Some(previous.ts.clone()),
        warnings: answer.warnings,
    }
}

/// When the earlier message is gone, posts `fallback` as a new message
/// (which becomes the alert's); any other error stands.
fn posted_instead(
    error: HandlerError,
    fallback: &Request,
    send: &mut impl FnMut(&Request) -> Result<Answer, HandlerError>,
    warnings: &mut Vec<String>,
) -> Result<Answer, HandlerError> {
    match &error {
        HandlerError::SlackRejected(r) if GONE.contains(&r.code.as_str()) => {
            warnings.push(format!("handler_posted_new_message:{}", r.code));
            send(fallback)
        }
        _ => Err(error),
    }
}

/// Slack's code for an error, or the error's kind.
fn code(e: &HandlerError) -> String {
    match e {
        HandlerError::SlackRejected(r) => r.code.clone(),
        HandlerError::Transient(t) => t.code.clone(),
        HandlerError::Transport(_) => "transport".to_string(),
        HandlerError::Tls(_) => "tls".to_string(),
        HandlerError::RequestDenied(_) => "request_denied".to_string(),
        _ => "internal".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SlackRejection;
    use serde_json::Value;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn seed() -> Config {
        Config::parse(include_str!("../examples/kapacitor.conf")).unwrap()
    }

    #[test]
    fn explicit_slack_with_no_options_uses_the_default_workspace() {
        let event = AlertEvent::with_message("Hey, check your CPU", Level::Warning);
        let p = prepare_alert(&seed(), &event, &[]).unwrap();
        assert_eq!(
            (p.workspace.as_str(), p.channel.as_str()),
            ("alerts", "#alerts")
        );
        assert_eq!(p.request.token.expose(), "mY5uP3Rs3CrE7t0keN1");
    }

    #[test]
    fn workspace_option_picks_the_section() {
        let event = AlertEvent::with_message("500s", Level::Info);
        let p = prepare_alert(&seed(), &event, &pairs(&[("workspace", "error-reports")])).unwrap();
        assert_eq!(
            (p.workspace.as_str(), p.channel.as_str()),
            ("error-reports", "#error-reports")
        );
        assert_eq!(p.request.token.expose(), "mY5uP3Rs3CrE7t0keN2");
    }

    #[test]
    fn unknown_option_stops_before_anything_is_sent() {
        let event = AlertEvent::with_message("x", Level::Ok);
        let e = prepare_alert(&seed(), &event, &pairs(&[("colour", "red")]))
            .err()
            .unwrap();
        assert!(matches!(e, HandlerError::UnknownOption(_)));
    }

    #[test]
    fn service_test_sends_kapacitors_test_message() {
        let p = prepare_test(&seed(), &[]).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&p.request.body).unwrap();
        assert_eq!(body["attachments"][0]["text"], "test slack message");
        assert_eq!(body["attachments"][0]["color"], "danger");
        assert_eq!(body["channel"], "#alerts");
    }

    #[test]
    fn summary_has_endpoints_and_no_secrets() {
        let s = summary(&seed());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].endpoint, Some(("https".into(), "slack.com".into())));
        assert!(s[0].is_default && !s[1].is_default);
        assert!(!format!("{s:?}").contains("mY5uP3Rs3CrE7t0keN"));
    }

    fn threaded(mode: &str) -> Config {
        Config::parse(&format!(
            "[slack]\nenabled = true\nurl = \"https://slack.test/api/chat.postMessage\"\ntoken = \"xoxb-1\"\nchannel = \"#ops\"\non-recovery = \"{mode}\"\n"
        ))
        .unwrap()
    }

    fn earlier() -> Vec<(String, String)> {
        pairs(&[("previous-channel-id", "C42"), ("previous-ts", "100.1")])
    }

    fn answer(ts: &str) -> Answer {
        Answer {
            channel_id: Some("C42".into()),
            ts: Some(ts.into()),
            warnings: vec![],
        }
    }

    fn rejected(code: &str) -> HandlerError {
        HandlerError::SlackRejected(SlackRejection {
            status: 200,
            code: code.into(),
            message: String::new(),
        })
    }

    /// Delivers through a fake Slack that answers in turn, recording
    /// (URL, body) of each request.
    fn run(
        p: Prepared,
        answers: Vec<Result<Answer, HandlerError>>,
    ) -> (Result<Delivery, HandlerError>, Vec<(String, Value)>) {
        let mut answers = answers.into_iter();
        let mut sent = Vec::new();
        let d = p.deliver(|r| {
            sent.push((
                r.url.expose().to_string(),
                serde_json::from_slice(&r.body).unwrap(),
            ));
            answers.next().unwrap()
        });
        (d, sent)
    }

    #[test]
    fn without_an_earlier_message_every_mode_posts() {
        for mode in ["new", "update", "thread"] {
            let e = AlertEvent::with_message("x", Level::Critical);
            let (d, sent) = run(
                prepare_alert(&threaded(mode), &e, &[]).unwrap(),
                vec![Ok(answer("7.7"))],
            );
            assert_eq!(d.unwrap().ts.as_deref(), Some("7.7"));
            assert_eq!(sent.len(), 1);
            assert!(sent[0].0.ends_with("/chat.postMessage"));
        }
    }

    #[test]
    fn update_edits_the_earlier_message_by_channel_id() {
        let e = AlertEvent::with_message("recovered", Level::Ok);
        let p = prepare_alert(&threaded("update"), &e, &earlier()).unwrap();
        let (d, sent) = run(p, vec![Ok(answer("100.1"))]);
        assert_eq!(sent[0].0, "https://slack.test/api/chat.update");
        assert_eq!(sent[0].1["channel"], "C42");
        assert_eq!(sent[0].1["ts"], "100.1");
        assert_eq!(sent[0].1["attachments"][0]["color"], "good");
        assert!(sent[0].1.get("username").is_none());
        let d = d.unwrap();
        assert_eq!(
            (d.channel_id.as_deref(), d.ts.as_deref()),
            (Some("C42"), Some("100.1"))
        );
    }

    #[test]
    fn a_message_slack_lost_is_posted_anew_and_becomes_the_alerts() {
        for code in ["message_not_found", "cant_update_message"] {
            let e = AlertEvent::with_message("still bad", Level::Critical);
            let p = prepare_alert(&threaded("update"), &e, &earlier()).unwrap();
            let (d, sent) = run(p, vec![Err(rejected(code)), Ok(answer("200.2"))]);
            let d = d.unwrap();
            assert_eq!(d.ts.as_deref(), Some("200.2"));
            assert_eq!(d.warnings, [format!("handler_posted_new_message:{code}")]);
            assert!(sent[1].0.ends_with("/chat.postMessage"));
            assert_eq!(sent[1].1["channel"], "#ops");
        }
        // Any other refusal stands.
        let e = AlertEvent::with_message("x", Level::Critical);
        let p = prepare_alert(&threaded("update"), &e, &earlier()).unwrap();
        let (d, sent) = run(p, vec![Err(rejected("invalid_auth"))]);
        assert_eq!(d.unwrap_err(), rejected("invalid_auth"));
        assert_eq!(sent.len(), 1);
    }

    #[test]
    fn thread_replies_and_a_recovery_updates_the_parent() {
        let e = AlertEvent::with_message("still bad", Level::Critical);
        let (d, sent) = run(
            prepare_alert(&threaded("thread"), &e, &earlier()).unwrap(),
            vec![Ok(answer("300.3"))],
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1["thread_ts"], "100.1");
        assert_eq!(sent[0].1["channel"], "C42");
        assert!(sent[0].1.get("reply_broadcast").is_none());
        assert_eq!(d.unwrap().ts.as_deref(), Some("100.1"));

        let e = AlertEvent::with_message("fine", Level::Ok);
        let mut opts = earlier();
        opts.extend(pairs(&[("thread-broadcast", "true")]));
        let (d, sent) = run(
            prepare_alert(&threaded("thread"), &e, &opts).unwrap(),
            vec![Ok(answer("400.4")), Ok(answer("100.1"))],
        );
        assert_eq!(sent[0].1["reply_broadcast"], true);
        assert!(sent[1].0.ends_with("/chat.update"));
        assert_eq!(sent[1].1["ts"], "100.1");
        assert_eq!(sent[1].1["attachments"][0]["color"], "good");
        assert!(d.unwrap().warnings.is_empty());
    }

    #[test]
    fn a_parent_that_cannot_be_updated_is_a_warning_not_a_failure() {
        let e = AlertEvent::with_message("fine", Level::Ok);
        let (d, _) = run(
            prepare_alert(&threaded("thread"), &e, &earlier()).unwrap(),
            vec![Ok(answer("400.4")), Err(rejected("edit_window_closed"))],
        );
        assert_eq!(
            d.unwrap().warnings,
            ["handler_parent_not_updated:edit_window_closed"]
        );
    }

    #[test]
    fn update_and_thread_need_the_web_api() {
        let e = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://hooks.slack.com/services/T/B/X\"\non-recovery = \"thread\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("on-recovery = \"thread\" needs the Web API"),
            "{e}"
        );
        let webhook = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://hooks.slack.com/services/T/B/X\"\n",
        )
        .unwrap();
        let ev = AlertEvent::with_message("x", Level::Ok);
        let e = prepare_alert(&webhook, &ev, &pairs(&[("on-recovery", "update")]))
            .err()
            .unwrap();
        assert!(
            matches!(&e, HandlerError::InvalidOption(m) if m.contains("a webhook cannot")),
            "{e:?}"
        );
    }

    fn with_buttons(layout: &str) -> Config {
        Config::parse(&format!(
            "[slack]\nenabled = true\nurl = \"https://slack.test/api/chat.postMessage\"\ntoken = \"xoxb-1\"\nchannel = \"#ops\"\nlayout = \"{layout}\"\nactions = [\"acknowledge\", \"silence\"]\n"
        ))
        .unwrap()
    }

    fn sent_body(p: Prepared) -> (String, Value) {
        let (_, sent) = run(p, vec![Ok(answer("1.1"))]);
        sent[0].clone()
    }

    #[test]
    fn buttons_sit_inside_a_coloured_attachment_in_both_layouts() {
        let e = AlertEvent::with_message("cpu high", Level::Critical);
        let key = pairs(&[("alert-key", "[\"cpu\",[]]")]);
        let (_, body) = sent_body(prepare_alert(&with_buttons("blocks"), &e, &key).unwrap());
        let blocks = body["attachments"][0]["blocks"].as_array().unwrap();
        let actions = blocks.last().unwrap();
        assert_eq!(actions["type"], "actions");
        assert_eq!(actions["elements"][0]["text"]["text"], "Acknowledge");
        assert_eq!(actions["elements"][1]["text"]["text"], "Silence 1h");
        assert_eq!(actions["elements"][2]["value"], "[\"cpu\",[]]");
        let (_, body) = sent_body(prepare_alert(&with_buttons("attachment"), &e, &key).unwrap());
        let attachments = body["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 2);
        assert!(attachments[0]["blocks"].is_null(), "the legacy fields stay");
        assert_eq!(attachments[1]["color"], attachments[0]["color"]);
        assert_eq!(attachments[1]["blocks"][0]["type"], "actions");
        // A recovery has none.
        let ok = AlertEvent::with_message("fine", Level::Ok);
        let (_, body) = sent_body(prepare_alert(&with_buttons("blocks"), &ok, &key).unwrap());
        assert!(!body.to_string().contains("\"actions\""), "{body}");
    }

    #[test]
    fn kapacitors_layout_and_a_webhook_refuse_actions_saying_why() {
        let e = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://slack.test/api/chat.postMessage\"\ntoken = \"t\"\nactions = \"acknowledge\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("`actions` needs `layout`"), "{e}");
        let e = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://hooks.slack.com/services/T/B/X\"\nlayout = \"blocks\"\nactions = \"silence\"\n",
        )
        .unwrap_err();
        assert!(matches!(e, HandlerError::InvalidConfig(_)), "{e:?}");
        assert!(e.to_string().contains("`actions` needs the Web API"), "{e}");
        let webhook = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://hooks.slack.com/services/T/B/X\"\nlayout = \"blocks\"\n",
        )
        .unwrap();
        let ev = AlertEvent::with_message("x", Level::Critical);
        let e = prepare_alert(&webhook, &ev, &pairs(&[("actions", "acknowledge")]))
            .err()
            .unwrap();
        assert!(matches!(e, HandlerError::InvalidConfig(_)), "{e:?}");
        let e = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://slack.test/api/chat.postMessage\"\ntoken = \"t\"\nlayout = \"blocks\"\nactions = \"acknowledge,escalate\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"escalate\""), "{e}");
        let e = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://slack.test/api/chat.postMessage\"\ntoken = \"t\"\nlayout = \"blocks\"\nsilence-durations = \"1h,soon\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"soon\" is not a duration"), "{e}");
    }

    #[test]
    fn a_refresh_edits_the_clicked_message_whatever_the_mode_and_shows_the_marks() {
        let e = AlertEvent::with_message("cpu high", Level::Critical);
        let mut options = earlier();
        options.extend(pairs(&[
            ("refresh", "true"),
            ("alert-key", "k"),
            ("acknowledged-by", "U7"),
            ("acknowledged-at", "1764460800"),
        ]));
        let p = prepare_alert(&with_buttons("blocks"), &e, &options).unwrap();
        let (d, sent) = run(p, vec![Err(rejected("message_not_found"))]);
        assert!(sent[0].0.ends_with("/chat.update"), "{}", sent[0].0);
        assert_eq!(sent.len(), 1, "nothing new is posted when it is gone");
        assert!(d.is_err());
        let text = sent[0].1.to_string();
        assert!(text.contains("Acknowledged by <@U7>"), "{text}");
        assert!(!text.contains("\"Acknowledge\""), "{text}");
        assert!(text.contains("Silence 1d"), "{text}");
        let half = pairs(&[("acknowledged-by", "U7")]);
        assert!(prepare_alert(&with_buttons("blocks"), &e, &half).is_err());
    }

    #[test]
    fn new_mode_ignores_an_earlier_message() {
        let e = AlertEvent::with_message("x", Level::Ok);
        let p = prepare_alert(&threaded("new"), &e, &earlier()).unwrap();
        let (d, sent) = run(p, vec![Ok(answer("9.9"))]);
        assert!(sent[0].0.ends_with("/chat.postMessage"));
        assert_eq!(d.unwrap().ts.as_deref(), Some("9.9"));
    }

    fn a_storm() -> Storm {
        let mut e = AlertEvent::with_message("cpu high", Level::Critical);
        e.id = "cpu:web01".into();
        Storm {
            key: "storm:#ops".into(),
            started: 1_764_410_400,
            now: 1_764_410_700,
            closed: false,
            group_labels: vec![],
            common_labels: vec![],
            firing: vec![(Level::Critical, 1)],
            resolved: 0,
            total: 1,
            lines: vec![crate::storm::StormLine {
                event: e,
                since: 1_764_410_400,
                silenced_until: None,
            }],
            more: 0,
        }
    }

    #[test]
    fn a_storm_without_its_message_is_posted() {
        let p = prepare_storm(&with_buttons("blocks"), &a_storm(), &[]).unwrap();
        let (d, sent) = run(p, vec![Ok(answer("5.5"))]);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].0.ends_with("/chat.postMessage"));
        assert_eq!(sent[0].1["channel"], "#ops");
        assert_eq!(
            sent[0].1["text"],
            "Storm in #ops: 1 alert firing (1 CRITICAL)"
        );
        let d = d.unwrap();
        assert_eq!(
            (d.channel_id.as_deref(), d.ts.as_deref()),
            (Some("C42"), Some("5.5"))
        );
    }

    #[test]
    fn a_storm_with_its_message_edits_it_without_mentions() {
        let mut options = earlier();
        options.extend(pairs(&[("mention", "here")]));
        let p = prepare_storm(&with_buttons("blocks"), &a_storm(), &options).unwrap();
        let (d, sent) = run(p, vec![Ok(answer("100.1"))]);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "https://slack.test/api/chat.update");
        assert_eq!(
            (&sent[0].1["channel"], &sent[0].1["ts"]),
            (&"C42".into(), &"100.1".into())
        );
        assert!(!sent[0].1["text"].as_str().unwrap().contains("<!here>"));
        assert_eq!(d.unwrap().ts.as_deref(), Some("100.1"));
    }

    #[test]
    fn a_storm_message_slack_lost_is_posted_anew() {
        let p = prepare_storm(&with_buttons("blocks"), &a_storm(), &earlier()).unwrap();
        let (d, sent) = run(
            p,
            vec![Err(rejected("message_not_found")), Ok(answer("6.6"))],
        );
        let d = d.unwrap();
        assert_eq!(d.ts.as_deref(), Some("6.6"));
        assert_eq!(d.warnings, ["handler_posted_new_message:message_not_found"]);
        assert!(sent[1].0.ends_with("/chat.postMessage"));
        assert_eq!(sent[1].1["channel"], "#ops");
        // After a click, a message that is gone stays gone.
        let mut options = earlier();
        options.extend(pairs(&[("refresh", "true")]));
        let p = prepare_storm(&with_buttons("blocks"), &a_storm(), &options).unwrap();
        let (d, sent) = run(p, vec![Err(rejected("message_not_found"))]);
        assert!(d.is_err());
        assert_eq!(sent.len(), 1);
    }

    #[test]
    fn a_storm_preview_redacts_the_token() {
        let p = prepare_storm(&with_buttons("attachment"), &a_storm(), &[]).unwrap();
        let preview = p.request.preview();
        assert!(preview
            .headers
            .contains(&("authorization".into(), "Bearer [redacted]".into())));
        assert!(preview.body.contains("Storm in #ops"), "{}", preview.body);
    }

    fn webhook() -> Config {
        Config::parse("[slack]\nenabled = true\nurl = \"https://hooks.slack.com/services/T/B/X\"\n")
            .unwrap()
    }

    #[test]
    fn a_webhook_cannot_storm() {
        assert_eq!(summary(&webhook())[0].storm_after, 0);
        let ev = AlertEvent::with_message("x", Level::Critical);
        let e = prepare_alert(&webhook(), &ev, &pairs(&[("stormAfter", "3")]))
            .err()
            .unwrap();
        assert!(
            matches!(&e, HandlerError::InvalidOption(m) if m.starts_with("`storm-after` = 3: a storm message needs the Web API") && m.contains("chat.update")),
            "{e:?}"
        );
        // 0 is what a webhook does anyway.
        assert!(prepare_alert(&webhook(), &ev, &pairs(&[("storm-after", "0")])).is_ok());
        let e = prepare_storm(&webhook(), &a_storm(), &[]).err().unwrap();
        assert!(
            matches!(&e, HandlerError::InvalidOption(m) if m.contains("(chat.update)")),
            "{e:?}"
        );
        let e = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://hooks.slack.com/services/T/B/X\"\nstorm-after = 2\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("line 1, [slack]: `storm-after` = 2: a storm message needs the Web API"),
            "{e}"
        );
    }

    #[test]
    fn the_summary_gives_each_sections_storm_settings() {
        let s = summary(&seed());
        assert_eq!((s[0].storm_after, s[0].storm_list), (4, 50));
        let c = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://slack.test/api/chat.postMessage\"\ntoken = \"t\"\nstorm-after = 0\nstorm-list = 200\n",
        )
        .unwrap();
        let s = summary(&c);
        assert_eq!((s[0].storm_after, s[0].storm_list), (0, 200));
    }

    #[test]
    fn templates_are_never_compiled_per_alert() {
        let config = Config::parse(
            "[slack]\nenabled = true\nurl = \"https://slack.test/api/chat.postMessage\"\ntoken = \"t\"\nlayout = \"blocks\"\ntitle = \"{{level}} {{id}}\"\n",
        )
        .unwrap();
        let options = pairs(&[
            ("footer", "{{taskName}} for {{duration}}"),
            ("fields", r#"[{"title":"Host","value":"{{tags.host}}"}]"#),
        ]);
        let event = AlertEvent::with_message("x", Level::Critical);
        prepare_alert(&config, &event, &options).unwrap();
        let before = crate::template::compilations();
        for _ in 0..100 {
            prepare_alert(&config, &event, &options).unwrap();
        }
        assert_eq!(crate::template::compilations(), before);
    }
}
