//! Alertmanager feeds `serve` (`POST /alertmanager`): its webhook payload,
//! each alert one event, the same rendering, pacing and store; bad
//! payloads refused whole, naming the field. Then a real Alertmanager
//! (Debian's `prometheus-alertmanager`, started by the test on free ports
//! of 127.0.0.1 with its own configuration and storage) posting to `serve`
//! with its bearer token from a `credentials_file`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use host_test::mock_slack::MockSlack;
use serde_json::{json, Value};

use crate::common::server::{wait_until, write_config, Server};
use crate::common::{free_port, pki, web_api_config};

/// A webhook payload (version 4) of `alerts`.
fn payload(alerts: &[Value]) -> String {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"HighLatency\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "slack",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    })
    .to_string()
}

fn firing(instance: &str) -> Value {
    json!({
        "status": "firing",
        "labels": {"alertname": "HighLatency", "severity": "critical", "instance": instance},
        "annotations": {"summary": format!("{instance} is slow")},
        "startsAt": "2026-11-29T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": format!("fp-{instance}"),
    })
}

/// The texts the stand-in's messages show (Kapacitor's layout: the
/// attachment's text).
fn texts(slack: &MockSlack) -> Vec<String> {
    slack
        .messages()
        .iter()
        .map(|m| {
            m.body["attachments"][0]["text"]
                .as_str()
                .or(m.body["text"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// A payload's alerts each become an alert event, stored together and
/// delivered one message each; a payload with one bad alert is refused
/// whole with a `400` naming the field, and nothing of it is stored.
#[test]
fn each_alert_of_a_payload_is_delivered_and_a_bad_payload_is_refused_whole() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    let post = |body: &str| {
        server.request(&format!(
            "POST /alertmanager?channel=%23ops HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };

    let (status, answer) = post(&payload(&[firing("web01"), firing("web02")]));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["ids"].as_array().map(Vec::len), Some(2), "{answer}");
    wait_until("both alerts delivered", || slack.messages().len() == 2);
    let mut shown = texts(&slack);
    shown.sort();
    assert_eq!(shown, ["web01 is slow", "web02 is slow"]);
    assert!(
        slack
            .messages()
            .iter()
            .all(|m| m.body["channel"] == "#ops" && m.body["attachments"][0]["color"] == "danger"),
        "to the query's channel, critical: {:#?}",
        slack.messages()
    );

    let mut unlabelled = firing("web03");
    unlabelled.as_object_mut().unwrap().remove("labels");
    let cases = [
        (payload(&[firing("web03"), unlabelled]), "alerts[1].labels"),
        (
            payload(&[firing("web03")]).replace("\"version\":\"4\"", "\"version\":\"3\""),
            "version",
        ),
        (
            r#"{"version":"4","status":"firing"}"#.to_string(),
            "alerts: missing",
        ),
        (
            payload(&[
                json!({"status": "firing", "labels": {"a": 1}, "startsAt": "2026-11-29T10:00:00Z"}),
            ]),
            "alerts[0].labels.a",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = post(&body);
        assert_eq!(status, 400, "{field}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(field), "the error names {field}: {error}");
    }
    let spool = server.spool();
    assert_eq!(
        spool["pending"],
        json!([]),
        "nothing of them stored: {spool}"
    );
    assert_eq!(spool["finished"].as_array().map(Vec::len), Some(2));
    // Nothing pending, so nothing more can be delivered.
    assert_eq!(slack.messages().len(), 2, "nothing more delivered");

    // Templates see the alert's annotations, labels and the payload's
    // receiver, status and URLs.
    let body = payload(&[firing("web05")]);
    let (status, answer) = server.request(&format!(
        "POST /alertmanager?channel=%23ctx&text=%7B%7Bannotations.summary%7D%7D%20on%20%7B%7Blabels.instance%7D%7D%20%28%7B%7Bstatus%7D%7D%2C%20%7B%7Breceiver%7D%7D%2C%20%7B%7BexternalURL%7D%7D%29 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(status, 202, "{answer}");
    wait_until("the templated alert delivered", || {
        slack.messages().len() == 3
    });
    assert!(
        texts(&slack).contains(
            &"web05 is slow on web05 (firing, slack, http://alertmanager.example:9093)".to_string()
        ),
        "{:?}",
        texts(&slack)
    );

    // Alertmanager left alerts out (max_alerts): said in the message and
    // in the delivery's warnings.
    let body =
        payload(&[firing("web06")]).replace("\"truncatedAlerts\":0", "\"truncatedAlerts\":3");
    let (status, answer) = post(&body);
    assert_eq!(status, 202, "{answer}");
    wait_until("the truncated group's alert delivered", || {
        slack.messages().len() == 4
    });
    assert!(
        texts(&slack)
            .iter()
            .any(|t| t.contains("3 more alerts of this group left out by Alertmanager")),
        "{:?}",
        texts(&slack)
    );
    wait_until("its ending says so", || {
        server.spool()["finished"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| {
                f["detail"].as_str().is_some_and(|d| {
                    d.contains("alertmanager-truncated: Alertmanager left 3 alerts")
                })
            })
    });

    let (status, answer) = server.request(&format!(
        "POST /alertmanager?topic=ops HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        payload(&[firing("web04")]).len(),
        payload(&[firing("web04")])
    ));
    assert_eq!(status, 400, "topic routing stays Kapacitor's: {answer}");
}

/// A resolution whose `endsAt` is before its `startsAt` (clocks that
/// differ) is still taken and delivered, with duration 0, and serve logs
/// a warning naming the alert and both times.
#[test]
fn a_resolution_that_ends_before_it_started_is_delivered_and_logged() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    let mut resolved = firing("web01");
    resolved["status"] = json!("resolved");
    resolved["endsAt"] = json!("2026-11-29T09:59:30Z");
    let body = payload(&[resolved]);
    let (status, answer) = server.request(&format!(
        "POST /alertmanager?channel=%23ops&text=%7B%7Bstatus%7D%7D%20after%20%7B%7Bduration%7D%7D HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(status, 202, "taken: {answer}");
    wait_until("the resolution delivered", || slack.messages().len() == 1);
    assert_eq!(texts(&slack), ["resolved after 0s"]);
    let logged = server.logged();
    let warning = logged
        .lines()
        .find(|l| l.contains("WARN") && l.contains("HighLatency[fp-web01]"))
        .unwrap_or_else(|| panic!("no warning naming the alert in:\n{logged}"));
    for part in [
        "instance=\"web01\"",
        "endsAt 2026-11-29T09:59:30Z before startsAt 2026-11-29T10:00:00Z",
        "duration 0",
    ] {
        assert!(warning.contains(part), "{part:?} in {warning}");
    }
}

/// Alertmanager re-sends a firing alert: at the same level and showing
/// the same it is a `repeat` (recorded, not sent); showing something new it
/// refreshes the alert's message with `on-recovery` `update` and is a
/// repeat otherwise; its resolution goes once.
#[test]
fn a_repeat_is_recorded_not_sent_and_refreshes_only_an_updated_message() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    let post = |query: &str, summary: &str, status: &str| {
        let mut alert = firing("web01");
        alert["annotations"]["summary"] = json!(summary);
        alert["status"] = json!(status);
        if status == "resolved" {
            alert["endsAt"] = json!("2026-11-29T10:05:00Z");
        }
        let body = payload(&[alert]);
        let (code, answer) = server.request(&format!(
            "POST /alertmanager?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        assert_eq!(code, 202, "{answer}");
    };
    let finished = |status: &str| {
        server.spool()["finished"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["status"] == status)
            .count()
    };
    let mut repeats_in_all = 0;
    for (query, mode) in [
        ("channel=%23t&on-recovery=thread", "thread"),
        ("channel=%23u&on-recovery=update", "update"),
    ] {
        let before = slack.messages().len();
        post(query, "p99 is 2.1s", "firing");
        wait_until("the first firing delivered", || {
            slack.messages().len() == before + 1
        });
        let ours = |slack: &MockSlack| slack.messages()[before].clone();
        let repeats = finished("repeat");
        post(query, "p99 is 2.1s", "firing");
        wait_until("the same again recorded as a repeat", || {
            finished("repeat") == repeats + 1
        });
        let refreshes = finished("delivered");
        post(query, "p99 is 2.7s", "firing");
        if mode == "update" {
            wait_until("the message refreshed", || ours(&slack).updates == 1);
            // Slack has the update; its ending is recorded a moment later.
            wait_until("the refresh recorded", || {
                finished("delivered") == refreshes + 1
            });
            assert!(
                ours(&slack).body.to_string().contains("p99 is 2.7s"),
                "{:#}",
                ours(&slack).body
            );
            repeats_in_all += 1;
        } else {
            wait_until("a change recorded as a repeat", || {
                finished("repeat") == repeats + 2
            });
            assert_eq!(ours(&slack).updates, 0, "not refreshed with {mode}");
            repeats_in_all += 2;
        }
        assert_eq!(
            slack.messages().len(),
            before + 1,
            "nothing new posted ({mode})"
        );
        let delivered = finished("delivered");
        post(query, "p99 is 2.7s", "resolved");
        wait_until("the resolution delivered", || {
            finished("delivered") == delivered + 1
        });
        let repeats = finished("repeat");
        post(query, "p99 is 2.7s", "resolved");
        wait_until("a second resolution recorded as a repeat", || {
            finished("repeat") == repeats + 1
        });
        repeats_in_all += 1;
        assert_eq!(
            finished("delivered"),
            delivered + 1,
            "the resolution went once"
        );
    }
    let metrics = server.metrics();
    assert!(
        metrics.contains(&format!(
            "slack_handler_alerts_repeated_total {repeats_in_all}"
        )),
        "{metrics}"
    );
}

/// A real Alertmanager, on free ports of 127.0.0.1, stopped when dropped.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Debian's `prometheus-alertmanager` (`ALERTMANAGER` names
    /// another binary) with a receiver posting to `webhook` with the bearer
    /// token in `token_file`; groups by `alertname`, short intervals.
    fn start(webhook: &str, token_file: &Path) -> Alertmanager {
        Alertmanager::start_on(webhook, token_file, free_port())
    }

    /// [`Alertmanager::start`] on `port` (known before: serve is told it).
    fn start_on(webhook: &str, token_file: &Path, port: u16) -> Alertmanager {
        Alertmanager::start_with(webhook, token_file, port, None)
    }

    /// [`Alertmanager::start_on`], its API served as `web_config` (an
    /// exporter-toolkit web configuration: TLS, client certificates) says.
    fn start_with(
        webhook: &str,
        token_file: &Path,
        port: u16,
        web_config: Option<&Path>,
    ) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                r#"route:
  receiver: slack
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 3s
receivers:
  - name: slack
    webhook_configs:
      - url: '{webhook}'
        send_resolved: true
        http_config:
          authorization:
            credentials_file: '{}'
"#,
                token_file.display()
            ),
        )
        .unwrap();
        let binary = std::env::var_os("ALERTMANAGER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("prometheus-alertmanager"));
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let mut command = Command::new(&binary);
        if let Some(web) = web_config {
            command.arg(format!("--web.config.file={}", web.display()));
        }
        let child = command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {}: {e} (apt-get install prometheus-alertmanager; scripts/test.sh does)",
                    binary.display()
                )
            });
        let am = Alertmanager {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        wait_until("Alertmanager ready", || match web_config {
            // Its API is behind TLS: listening is as much as this can see.
            Some(_) => TcpStream::connect(am.addr).is_ok(),
            None => am
                .call("GET", "/-/ready", "")
                .is_some_and(|(s, _)| s == 200),
        });
        am
    }

    /// One request to its API; the status and body, or `None` when it does
    /// not answer (yet).
    fn call(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(self.addr).ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let status = answer.split_whitespace().nth(1)?.parse().ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Some((
            status,
            if chunked {
                unchunk(body)?
            } else {
                body.to_string()
            },
        ))
    }

    /// Every silence it has (`GET /api/v2/silences`).
    fn silences(&self) -> Vec<Value> {
        let (status, all) = self.call("GET", "/api/v2/silences", "").unwrap();
        assert_eq!(status, 200);
        serde_json::from_str::<Value>(&all)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Pushes `alerts` through its API v2, as Prometheus does.
    fn push(&self, alerts: &Value) {
        let (status, body) = self
            .call("POST", "/api/v2/alerts", &alerts.to_string())
            .expect("Alertmanager answers");
        assert_eq!(status, 200, "Alertmanager took the alerts: {body}");
    }
}

/// A chunked HTTP/1.1 body, whole.
fn unchunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rfc3339(at: std::time::SystemTime) -> String {
    let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    slack_alert_handler::timefmt::rfc3339(secs, 0)
}

/// A real Alertmanager with a webhook to `serve` (its bearer token read
/// from a `credentials_file`): two alerts of one group fire, one message
/// each; Alertmanager's repeats every `repeat_interval` are recorded, not
/// posted; a third alert joins the group and only it is posted; they
/// resolve, one resolution each, in the alert's thread, and no more.
#[test]
fn a_real_alertmanager_fires_and_resolves_through_serve() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("{}on-recovery = \"thread\"\n", web_api_config(&slack)),
    );
    let token = dir.path().join("token");
    std::fs::write(&token, "am-bearer-token-123\n").unwrap();
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--auth-token-file", token.to_str().unwrap()],
    );
    let am = Alertmanager::start(
        &format!("http://{}/alertmanager?channel=%23ops", server.addr()),
        &token,
    );
    let alert = |instance: &str, ends: Option<&str>| {
        let mut a = json!({
            "labels": {"alertname": "HighLatency", "severity": "warning", "instance": instance},
            "annotations": {"summary": format!("{instance} is slow"), "description": "p99 above 2s"},
            "generatorURL": "http://prometheus.example/graph",
        });
        if let Some(ends) = ends {
            a["endsAt"] = json!(ends);
        }
        a
    };
    am.push(&json!([alert("web01", None), alert("web02", None)]));
    wait_until("both alerts fired into Slack", || {
        slack.messages().len() == 2
    });
    let fired = slack.messages();
    let mut shown = texts(&slack);
    shown.sort();
    assert_eq!(shown, ["web01 is slow", "web02 is slow"]);
    assert!(
        fired
            .iter()
            .all(|m| m.body["attachments"][0]["color"] == "warning"),
        "severity warning: {fired:#?}"
    );
    // Alertmanager sends the group again every 3 s (repeat_interval):
    // repeats, none posted.
    let repeats = || {
        let (status, answer) = server.request(
            "GET /spool?list=finished&limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer am-bearer-token-123\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200, "{answer}");
        answer["finished"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["status"] == "repeat")
            .count()
    };
    wait_until("Alertmanager's repeats recorded, not sent", || {
        repeats() >= 2
    });
    assert_eq!(slack.messages().len(), 2, "no repeat posted");
    // The group changes: a third alert joins; only it is posted.
    am.push(&json!([
        alert("web01", None),
        alert("web02", None),
        alert("web03", None)
    ]));
    wait_until("the new alert of the group delivered", || {
        slack.messages().len() == 3
    });
    // Alertmanager sent the group again (its repeats recorded): still 3.
    let before = repeats();
    wait_until("the group sent again", || repeats() >= before + 3);
    assert_eq!(
        slack.messages().len(),
        3,
        "the group's other alerts are repeats"
    );
    // Resolved now: Alertmanager sends the resolution at the next
    // group interval.
    let now = rfc3339(std::time::SystemTime::now());
    am.push(&json!([
        alert("web01", Some(&now)),
        alert("web02", Some(&now)),
        alert("web03", Some(&now))
    ]));
    wait_until("every resolution delivered", || {
        slack
            .messages()
            .iter()
            .filter(|m| m.thread_ts.is_some())
            .count()
            == 3
    });
    // Past a repeat interval: a resolution goes once. (Alertmanager does
    // not send a resolved group again, so there is no event to wait on:
    // this is the one place time itself is the condition.)
    std::thread::sleep(Duration::from_secs(4));
    let messages = slack.messages();
    let top: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    let replies: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_some()).collect();
    assert_eq!(top.len(), 3, "one message per alert: {messages:#?}");
    assert_eq!(replies.len(), 3, "one resolution per alert: {messages:#?}");
    for reply in replies {
        assert!(
            top.iter().any(|t| Some(&t.ts) == reply.thread_ts.as_ref()),
            "each resolution in its alert's thread"
        );
    }
    assert!(
        !server.logged().contains("am-bearer-token-123"),
        "the token is never logged"
    );
}

/// A real Alertmanager's group of 12 alerts arrives in one payload: more
/// than `storm-after`, so one storm message for the group (its labels in
/// the header), every alert ended `shown in storm`; Alertmanager's
/// repeats change nothing; the resolutions edit the same message.
#[test]
fn a_real_alertmanager_group_is_one_storm_message() {
    let slack = MockSlack::start().unwrap();
    slack.limit_like_slack();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let token = dir.path().join("token");
    std::fs::write(&token, "am-bearer-token-123\n").unwrap();
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &[
            "--auth-token-file",
            token.to_str().unwrap(),
            "--channel-interval-ms",
            "1000",
            "--storm-calm-secs",
            "600",
        ],
    );
    let am = Alertmanager::start(
        &format!("http://{}/alertmanager?channel=%23ops", server.addr()),
        &token,
    );
    let alert = |i: usize, ends: Option<&str>| {
        let mut a = json!({
            "labels": {"alertname": "DiskFull", "severity": "critical", "instance": format!("db{i:02}")},
            "annotations": {"summary": format!("db{i:02} disk is full")},
        });
        if let Some(ends) = ends {
            a["endsAt"] = json!(ends);
        }
        a
    };
    am.push(&Value::Array((0..12).map(|i| alert(i, None)).collect()));
    let finished = || {
        let (status, answer) = server.request(
            "GET /spool?list=finished&limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer am-bearer-token-123\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200, "{answer}");
        answer["finished"]["items"].as_array().unwrap().clone()
    };
    let shown = |f: &Vec<Value>| {
        f.iter()
            .filter(|f| {
                f["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("shown in storm ")
            })
            .count()
    };
    wait_until("the group shown in one storm message", || {
        shown(&finished()) == 12
    });
    assert_eq!(slack.messages().len(), 1, "{:#?}", slack.messages());
    let body = slack.messages()[0].body.to_string();
    assert!(body.contains("DiskFull"), "the group's labels: {body}");
    assert!(body.contains("db11") && body.contains("db00"), "{body}");
    // Alertmanager sends the group again (repeat_interval 3 s): repeats.
    wait_until("Alertmanager's repeats recorded", || {
        finished()
            .iter()
            .filter(|f| f["status"] == "repeat")
            .count()
            >= 12
    });
    assert_eq!(slack.messages().len(), 1, "no repeat posted");
    let now = rfc3339(std::time::SystemTime::now());
    am.push(&Value::Array(
        (0..12).map(|i| alert(i, Some(&now))).collect(),
    ));
    wait_until("the resolutions shown in the same message", || {
        shown(&finished()) == 24
    });
    let messages = slack.messages();
    assert_eq!(
        messages.len(),
        1,
        "resolutions edit, never post: {messages:#?}"
    );
    assert!(messages[0].updates >= 1);
    assert_eq!(slack.rate_limited() + slack.updates_limited(), 0);
}

/// serve's client of Alertmanager's silences API v2 (issue 31's first
/// part), against a real Alertmanager 0.25: a silence is created with its
/// matchers, creator and comment and is active; creating it again (a
/// retry after a timeout) finds the first by its comment instead of making
/// a second; it is expired; an Alertmanager that does not answer is
/// skipped for the next of an HA pair, and none answering is said quickly.
#[test]
fn serves_silences_client_creates_finds_and_expires_in_a_real_alertmanager() {
    use alert_handler_host::net::{dial::Dialer, tls};
    use slack_alertd::silences::{Alertmanagers, Matcher, NewSilence};

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "unused\n").unwrap();
    let am = Alertmanager::start("http://127.0.0.1:1/unused", &token);
    let dialer = Dialer::new(
        &alert_handler_host::NetSettings::default(),
        tls::client_config(&tls::TlsSettings::default(), "").unwrap(),
    );
    let down = format!("http://127.0.0.1:{}", free_port());
    let ams = Alertmanagers::new(
        &[down.clone(), format!("http://{}", am.addr)],
        None,
        dialer.clone(),
    )
    .unwrap();
    let now = std::time::SystemTime::now();
    let silence = NewSilence {
        id: None,
        matchers: vec![
            Matcher {
                name: "alertname".into(),
                value: "DiskFull".into(),
                is_regex: false,
                is_equal: true,
            },
            Matcher {
                name: "instance".into(),
                value: "db01".into(),
                is_regex: false,
                is_equal: true,
            },
        ],
        starts_at: rfc3339(now),
        ends_at: rfc3339(now + Duration::from_secs(3600)),
        created_by: "@ana (U0ANA)".into(),
        comment: "Silenced from Slack (click 9.9.9/2.2)".into(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let id = runtime.block_on(ams.create(&silence)).unwrap();
    let again = runtime.block_on(ams.create(&silence)).unwrap();
    assert_eq!(again, id, "a retry finds the silence, it makes no second");
    let all = am.silences();
    assert_eq!(all.len(), 1, "{all:#?}");
    let got = runtime.block_on(ams.get(&id)).unwrap().expect("it exists");
    assert_eq!(got.status.state, "active");
    assert_eq!(got.created_by, "@ana (U0ANA)");
    assert_eq!(got.matchers.len(), 2);
    // Asked again for a day (the message's silence changed): still one
    // active silence, now a day long.
    let longer = NewSilence {
        id: Some(id.clone()),
        ends_at: rfc3339(now + Duration::from_secs(86_400)),
        ..silence.clone()
    };
    let changed = runtime.block_on(ams.create(&longer)).unwrap();
    let all = am.silences();
    let active: Vec<&Value> = all
        .iter()
        .filter(|s| s["status"]["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{all:#?}");
    assert_eq!(active[0]["id"], changed.as_str());
    let ends = runtime
        .block_on(ams.get(&changed))
        .unwrap()
        .unwrap()
        .ends_at;
    assert_eq!(
        slack_alert_handler::alert_json::unix_seconds(&ends),
        slack_alert_handler::alert_json::unix_seconds(&longer.ends_at),
        "{ends}"
    );
    let id = changed;
    runtime.block_on(ams.expire(&id)).unwrap();
    let got = runtime
        .block_on(ams.get(&id))
        .unwrap()
        .expect("kept, expired");
    assert_eq!(got.status.state, "expired");
    runtime.block_on(ams.expire(&id)).unwrap();
    // One of an HA pair taking connections and never answering: the
    // other answers, and the whole look-up and create stays within
    // Slack's 3 seconds; the next request asks the one that answered first.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_url = format!("http://{}", hanging.local_addr().unwrap());
    let pair = Alertmanagers::new(
        &[hanging_url, format!("http://{}", am.addr)],
        None,
        dialer.clone(),
    )
    .unwrap();
    let other = NewSilence {
        comment: "Silenced from Slack by @ana (U0ANA) on another message".into(),
        ..silence.clone()
    };
    let started = std::time::Instant::now();
    let made = runtime.block_on(pair.create(&other)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    runtime.block_on(pair.expire(&made)).unwrap();
    assert!(
        started.elapsed() < slack_alertd::silences::DEADLINE,
        "the one that answered is asked first: {:?}",
        started.elapsed()
    );
    drop(hanging);
    // None answering: said, quickly, naming where.
    let none = Alertmanagers::new(std::slice::from_ref(&down), None, dialer).unwrap();
    let started = std::time::Instant::now();
    let why = runtime.block_on(none.create(&silence)).unwrap_err();
    assert!(
        why.contains("no Alertmanager answered") && why.contains("127.0.0.1"),
        "{why}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Issue 31 wired: `serve --alertmanager-url` and a real Alertmanager
/// 0.25. A signed Silence 1h click on an Alertmanager alert's message makes
/// an active silence there with the alert's labels, by the clicker, for
/// about an hour, and marks the message; Unsilence expires it; with
/// Alertmanager gone, a click is answered, the clicker told why, and
/// nothing is marked.
#[test]
fn a_silence_click_on_an_alertmanager_alert_is_a_silence_in_alertmanager() {
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "{}layout = \"blocks\"\nactions = \"acknowledge,silence\"\nsigning-secret = \"{SECRET}\"\n",
            web_api_config(&slack)
        ),
    );
    let token = dir.path().join("token");
    std::fs::write(&token, "am-bearer-token-123\n").unwrap();
    let am_port = free_port();
    let am_url = format!("http://127.0.0.1:{am_port}");
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &[
            "--auth-token-file",
            token.to_str().unwrap(),
            "--alertmanager-url",
            &am_url,
        ],
    );
    let am = Alertmanager::start_on(
        &format!("http://{}/alertmanager?channel=%23ops", server.addr()),
        &token,
        am_port,
    );
    am.push(&json!([{
        "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db01"},
        "annotations": {"summary": "db01 disk is full"},
    }]));
    let spool = |list: &str| spool_list(&server, "am-bearer-token-123", list);
    wait_until("the alert's message posted and kept", || {
        let messages = slack.messages();
        messages.len() == 1 && spool("messages").iter().any(|m| m["ts"] == messages[0].ts)
    });
    let click = |action: &str, user: &str| click_first(&server, &slack, SECRET, action, user);
    let silences = || am.silences();
    // Alertmanager repeats the alert every 3 s (repeat_interval): one
    // repeat recorded first, so its quiet under the silence means it.
    let ended = || {
        spool("finished")
            .iter()
            .filter(|f| {
                !f["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("redrawn")
            })
            .count()
    };
    wait_until("Alertmanager's first repeat recorded", || ended() >= 2);
    assert_eq!(click("silence:1h", "U0ANA"), 200);
    let all = silences();
    assert_eq!(all.len(), 1, "{all:#?}");
    let silence = &all[0];
    assert_eq!(silence["status"]["state"], "active");
    assert_eq!(silence["createdBy"], "@on-call (U0ANA)");
    let m = slack.messages().into_iter().next().unwrap();
    let link = format!(
        "https://alerts.slack.com/archives/{}/p{}",
        m.channel_id,
        m.ts.replace('.', "")
    );
    let comment = silence["comment"].as_str().unwrap();
    assert!(
        comment.starts_with("Silenced from Slack by @on-call (U0ANA) on ")
            && comment.contains(&link),
        "the comment links to the message ({link}): {comment}"
    );
    let lasts = |from: &str, to: &str| {
        let at = |s: &str| {
            slack_alert_handler::alert_json::unix_seconds(s).unwrap_or_else(|| panic!("{s}"))
        };
        at(to) - at(from)
    };
    let length = lasts(
        silence["startsAt"].as_str().unwrap(),
        silence["endsAt"].as_str().unwrap(),
    );
    assert!((3590..=3610).contains(&length), "about an hour: {length} s");
    let mut matchers: Vec<String> = silence["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}={}",
                m["name"].as_str().unwrap(),
                m["value"].as_str().unwrap()
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        ["alertname=DiskFull", "instance=db01", "severity=critical"]
    );
    wait_until("the message redrawn as silenced", || {
        slack.messages()[0]
            .body
            .to_string()
            .contains("Silenced by <@U0ANA>")
    });
    // Alertmanager itself holds the alert back: suppressed by the
    // silence, and no repeat reaches serve for three repeat intervals.
    let id = silence["id"].as_str().unwrap().to_string();
    let (status, alerts) = am.call("GET", "/api/v2/alerts", "").unwrap();
    assert_eq!(status, 200);
    let alerts: Value = serde_json::from_str(&alerts).unwrap();
    assert_eq!(alerts[0]["status"]["state"], "suppressed", "{alerts:#}");
    assert_eq!(alerts[0]["status"]["silencedBy"][0], id.as_str());
    let before = ended();
    std::thread::sleep(Duration::from_secs(9));
    assert_eq!(
        ended(),
        before,
        "Alertmanager notified no repeat under the silence"
    );
    // Expired in Alertmanager's own UI: Alertmanager's next repeat finds it
    // so (it is not recorded as silenced), the mark is lifted, and the
    // message is drawn again without it, though the repeat shows nothing
    // new.
    let (status, _) = am
        .call("DELETE", &format!("/api/v2/silence/{id}"), "")
        .unwrap();
    assert_eq!(status, 200);
    wait_until("Alertmanager's next repeat ended", || ended() > before);
    wait_until("the message redrawn without the mark", || {
        !slack.messages()[0].body.to_string().contains("Silenced by")
    });
    assert_eq!(slack.messages().len(), 1, "redrawn in place, not posted");
    assert!(
        spool("finished").iter().all(|f| f["status"] != "silenced"),
        "{:#?}",
        spool("finished")
    );
    assert!(
        spool("messages")
            .iter()
            .all(|m| m.get("silenced").is_none_or(Value::is_null)),
        "the mark lifted: {:#?}",
        spool("messages")
    );
    // Silenced again, then Unsilence expires it in Alertmanager.
    assert_eq!(click("silence:1h", "U0ANA"), 200);
    let active = || {
        silences()
            .into_iter()
            .filter(|s| s["status"]["state"] == "active")
            .count()
    };
    assert_eq!(active(), 1);
    wait_until("the silence marked", || {
        spool("messages")
            .iter()
            .any(|m| m.get("silenced").is_some_and(|s| !s.is_null()))
    });
    // Silence 1d on the silenced message: its silence changed, no second.
    assert_eq!(click("silence:1d", "U0BOB"), 200);
    assert_eq!(active(), 1, "{:#?}", silences());
    let day = silences()
        .into_iter()
        .find(|s| s["status"]["state"] == "active")
        .unwrap();
    let length = lasts(
        day["startsAt"].as_str().unwrap(),
        day["endsAt"].as_str().unwrap(),
    );
    assert!(length > 86_000, "a day now: {length} s");
    assert_eq!(click("unsilence", "U0BOB"), 200);
    assert_eq!(active(), 0, "{:#?}", silences());
    // Alertmanager gone: answered, the clicker told why, nothing marked.
    drop(am);
    let before = slack.requests().len();
    assert_eq!(click("silence:1h", "U0ANA"), 200);
    wait_until("the clicker's notice", || {
        slack.requests()[before..].iter().any(|r| {
            r.path.ends_with("/response")
                && String::from_utf8_lossy(&r.body).contains("Not silenced")
        })
    });
    let kept = spool("messages");
    assert!(
        kept.iter()
            .all(|m| m.get("silenced").is_none_or(Value::is_null)),
        "nothing marked: {kept:#?}"
    );
}

/// Two serve nodes on PostgreSQL with the same `--alertmanager-url`: an
/// Alertmanager alert taken by one node, its Silence click taken by the
/// other, the same click sent again to the first (a replay, or Slack
/// sending twice): one silence in Alertmanager, whichever node takes it.
#[test]
fn on_two_postgresql_nodes_a_silence_click_makes_one_silence() {
    use host_test::slack_clicks::{block_actions, form, now, request};
    use testdb::TestDb;
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "{}layout = \"blocks\"\nactions = \"acknowledge,silence\"\nsigning-secret = \"{SECRET}\"\n",
            web_api_config(&slack)
        ),
    );
    let am_port = free_port();
    let am_url = format!("http://127.0.0.1:{am_port}");
    let node = |name: &str| {
        Server::start_on_store(
            &config,
            &db.url(),
            &dir.path().join(format!("{name}.log")),
            &["--node", name, "--alertmanager-url", &am_url],
        )
    };
    let (a, b) = (node("a"), node("b"));
    let token = dir.path().join("token");
    std::fs::write(&token, "unused\n").unwrap();
    let am = Alertmanager::start_on(
        &format!("http://{}/alertmanager?channel=%23ops", a.addr()),
        &token,
        am_port,
    );
    am.push(&json!([{
        "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db02"},
    }]));
    wait_until("the alert's message posted and kept", || {
        let messages = slack.messages();
        messages.len() == 1
            && a.spool()["messages"]
                .as_array()
                .is_some_and(|kept| kept.iter().any(|m| m["ts"] == messages[0].ts))
    });
    let m = slack.messages().into_iter().next().unwrap();
    let value = m.body["attachments"][0]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .map(|b| b["elements"][0]["value"].as_str().unwrap().to_string())
        .expect("buttons");
    let payload = block_actions(
        "silence:1h",
        &value,
        "U0ANA",
        &m.channel_id,
        &m.ts,
        &format!("{}/actions/T0001/1/response", slack.url()),
    );
    let click = request(
        "/slack/interactions",
        &form(&payload),
        Some((SECRET, now())),
    );
    assert_eq!(b.request(&click).0, 200);
    assert_eq!(a.request(&click).0, 200, "the same click again");
    let active = || {
        am.silences()
            .into_iter()
            .filter(|s| s["status"]["state"] == "active")
            .collect::<Vec<_>>()
    };
    let first = active();
    assert_eq!(first.len(), 1, "one silence: {first:#?}");
    // Unsilenced, then one click taken by both nodes at once (Slack's
    // envelope sent twice, each to another node): still one silence,
    // the one the store's mark names.
    let unsilence = request(
        "/slack/interactions",
        &form(&block_actions(
            "unsilence",
            &value,
            "U0ANA",
            &m.channel_id,
            &m.ts,
            &format!("{}/actions/T0001/1/response", slack.url()),
        )),
        Some((SECRET, now())),
    );
    assert_eq!(a.request(&unsilence).0, 200);
    assert!(active().is_empty());
    let again = request(
        "/slack/interactions",
        &form(&block_actions(
            "silence:1h",
            &value,
            "U0ANA",
            &m.channel_id,
            &m.ts,
            &format!("{}/actions/T0001/1/response", slack.url()),
        )),
        Some((SECRET, now())),
    );
    std::thread::scope(|scope| {
        let (a, b, again) = (&a, &b, &again);
        let on_a = scope.spawn(move || a.request(again).0);
        let on_b = scope.spawn(move || b.request(again).0);
        assert_eq!((on_a.join().unwrap(), on_b.join().unwrap()), (200, 200));
    });
    let now_active = active();
    assert_eq!(now_active.len(), 1, "one silence: {now_active:#?}");
    let kept = a.spool()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        kept.iter()
            .any(|m| m["silenced"]["silence"] == now_active[0]["id"]),
        "the mark names the one silence: {kept:#?}"
    );
}

/// `GET /spool?list=LIST` with `token`: the list's items.
fn spool_list(server: &Server, token: &str, list: &str) -> Vec<Value> {
    let (status, answer) = server.request(&format!(
        "GET /spool?list={list}&limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(status, 200, "{answer}");
    answer[list]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A click by `user` asking `action` on the stand-in's first message,
/// signed with `secret`, posted to serve's Request URL: the status.
fn click_first(server: &Server, slack: &MockSlack, secret: &str, action: &str, user: &str) -> u16 {
    use host_test::slack_clicks::{block_actions, form, now, request};
    let m = slack.messages().into_iter().next().unwrap();
    // Every button of a message names its alert (or storm) alike.
    let value = any_button_value(&m.body).expect("the message has buttons");
    let payload = block_actions(
        action,
        &value,
        user,
        &m.channel_id,
        &m.ts,
        &format!("{}/actions/T0001/1/response", slack.url()),
    );
    server
        .request(&request(
            "/slack/interactions",
            &form(&payload),
            Some((secret, now())),
        ))
        .0
}

/// The `value` of a message's first button.
fn any_button_value(body: &Value) -> Option<String> {
    match body {
        Value::Object(map) => {
            if map.contains_key("action_id") {
                if let Some(value) = map.get("value").and_then(Value::as_str) {
                    return Some(value.to_string());
                }
            }
            map.values().find_map(any_button_value)
        }
        Value::Array(items) => items.iter().find_map(any_button_value),
        _ => None,
    }
}

/// The `value` of the button whose `action_id` is `action`, wherever the
/// message's layout puts its actions block.
fn button_value(body: &Value, action: &str) -> Option<String> {
    match body {
        Value::Object(map) => {
            if map.get("action_id").and_then(Value::as_str) == Some(action) {
                return map.get("value").and_then(Value::as_str).map(str::to_string);
            }
            map.values().find_map(|v| button_value(v, action))
        }
        Value::Array(items) => items.iter().find_map(|v| button_value(v, action)),
        _ => None,
    }
}

/// A Silence click on one Alertmanager group's storm message makes one
/// silence in a real Alertmanager 0.25, on the labels the group's alerts
/// share (not each alert's), which suppresses every alert of the group;
/// Unsilence expires it.
#[test]
fn a_silence_click_on_a_groups_storm_message_is_one_silence_on_its_common_labels() {
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "{}layout = \"blocks\"\nactions = \"acknowledge,silence\"\nsigning-secret = \"{SECRET}\"\n",
            web_api_config(&slack)
        ),
    );
    let token = dir.path().join("token");
    std::fs::write(&token, "am-bearer-token-123\n").unwrap();
    let am_port = free_port();
    let am_url = format!("http://127.0.0.1:{am_port}");
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &[
            "--auth-token-file",
            token.to_str().unwrap(),
            "--alertmanager-url",
            &am_url,
            "--storm-calm-secs",
            "600",
        ],
    );
    let am = Alertmanager::start_on(
        &format!("http://{}/alertmanager?channel=%23ops", server.addr()),
        &token,
        am_port,
    );
    am.push(&Value::Array(
        (0..8)
            .map(|i| {
                json!({"labels": {"alertname": "DiskFull", "severity": "critical",
                    "team": "storage", "instance": format!("db{i:02}")}})
            })
            .collect(),
    ));
    let spool = |list: &str| spool_list(&server, "am-bearer-token-123", list);
    wait_until("the group's storm message posted and kept", || {
        let messages = slack.messages();
        messages.len() == 1
            && spool("messages").iter().any(|m| m["ts"] == messages[0].ts)
            && spool("pending").is_empty()
    });
    let click = |action: &str| click_first(&server, &slack, SECRET, action, "U0ANA");
    let silences = || am.silences();
    assert_eq!(click("silence:1h"), 200);
    let all = silences();
    assert_eq!(all.len(), 1, "one silence for the group: {all:#?}");
    assert_eq!(all[0]["status"]["state"], "active");
    assert_eq!(all[0]["createdBy"], "@on-call (U0ANA)");
    let mut matchers: Vec<String> = all[0]["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}={}",
                m["name"].as_str().unwrap(),
                m["value"].as_str().unwrap()
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        ["alertname=DiskFull", "severity=critical", "team=storage"],
        "the labels the group's alerts share"
    );
    let (_, alerts) = am.call("GET", "/api/v2/alerts", "").unwrap();
    let alerts: Value = serde_json::from_str(&alerts).unwrap();
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 8);
    assert!(
        alerts.iter().all(|a| a["status"]["state"] == "suppressed"),
        "every alert of the group silenced: {alerts:#?}"
    );
    wait_until("the storm message redrawn as silenced", || {
        slack.messages()[0]
            .body
            .to_string()
            .contains("Silenced by <@U0ANA>")
    });
    assert_eq!(click("unsilence"), 200);
    let all = silences();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["status"]["state"], "expired", "{all:#?}");
    wait_until("the storm message redrawn without the mark", || {
        !slack.messages()[0].body.to_string().contains("Silenced by")
    });
    // Silenced again, then expired in Alertmanager's own UI: the group's
    // next repeat from Alertmanager finds it so, and the storm message is
    // drawn again without the mark.
    assert_eq!(click("silence:1h"), 200);
    let active: Vec<Value> = silences()
        .into_iter()
        .filter(|s| s["status"]["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{active:#?}");
    wait_until("the storm message redrawn as silenced again", || {
        slack.messages()[0]
            .body
            .to_string()
            .contains("Silenced by <@U0ANA>")
    });
    let id = active[0]["id"].as_str().unwrap();
    let (status, _) = am
        .call("DELETE", &format!("/api/v2/silence/{id}"), "")
        .unwrap();
    assert_eq!(status, 200);
    wait_until("the storm message redrawn without the mark", || {
        !slack.messages()[0].body.to_string().contains("Silenced by")
    });
    assert!(
        spool("messages")
            .iter()
            .all(|m| m.get("silenced").is_none_or(Value::is_null)),
        "the mark lifted: {:#?}",
        spool("messages")
    );
    assert_eq!(slack.messages().len(), 1, "one storm message throughout");
}

/// An Alertmanager whose API takes only clients with a certificate of its
/// CA (its web configuration's `RequireAndVerifyClientCert`), over TLS:
/// serve with `--alertmanager-ca-file`, `--alertmanager-cert-file` and
/// `--alertmanager-key-file` silences in it; without a certificate,
/// Alertmanager refuses the same request.
#[test]
fn alertmanager_behind_mutual_tls_is_reached_with_serves_client_certificate() {
    use alert_handler_host::net::{dial::Dialer, tls};
    use host_test::slack_clicks::{block_actions, form, now, request};
    use slack_alertd::silences::Alertmanagers;
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("Alertmanager CA");
    let server_leaf = ca.leaf(&["127.0.0.1"]);
    let client_leaf = ca.leaf(&["slack-alertd"]);
    let ca_file = pki::write(dir.path(), "ca.pem", &ca.pem);
    let server_cert = pki::write(dir.path(), "am.pem", &server_leaf.cert_pem);
    let server_key = pki::write(dir.path(), "am-key.pem", &server_leaf.key_pem);
    let client_cert = pki::write(dir.path(), "client.pem", &client_leaf.cert_pem);
    let client_key = pki::write(dir.path(), "client-key.pem", &client_leaf.key_pem);
    let web = pki::write(
        dir.path(),
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            server_cert.display(),
            server_key.display(),
            ca_file.display()
        ),
    );
    let token = dir.path().join("token");
    std::fs::write(&token, "unused\n").unwrap();
    let am_port = free_port();
    let am = Alertmanager::start_with("http://127.0.0.1:1/unused", &token, am_port, Some(&web));
    let am_url = format!("https://127.0.0.1:{am_port}");

    let slack = MockSlack::start().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "{}layout = \"blocks\"\nactions = \"silence\"\nsigning-secret = \"{SECRET}\"\n",
            web_api_config(&slack)
        ),
    );
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &[
            "--alertmanager-url",
            &am_url,
            "--alertmanager-ca-file",
            ca_file.to_str().unwrap(),
            "--alertmanager-cert-file",
            client_cert.to_str().unwrap(),
            "--alertmanager-key-file",
            client_key.to_str().unwrap(),
        ],
    );
    // Alertmanager's webhook, as it would post it.
    let (status, answer) = server.request(&format!(
        "POST /alertmanager?channel=%23ops HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        payload(&[firing("db07")]).len(),
        payload(&[firing("db07")])
    ));
    assert_eq!(status, 202, "{answer}");
    wait_until("the alert's message posted and kept", || {
        let messages = slack.messages();
        messages.len() == 1
            && server.spool()["messages"]
                .as_array()
                .is_some_and(|kept| kept.iter().any(|m| m["ts"] == messages[0].ts))
    });
    let m = slack.messages().into_iter().next().unwrap();
    let value = button_value(&m.body, "silence:1h").expect("a Silence 1h button");
    let click = block_actions(
        "silence:1h",
        &value,
        "U0ANA",
        &m.channel_id,
        &m.ts,
        &format!("{}/actions/T0001/1/response", slack.url()),
    );
    let answer = server.request(&request(
        "/slack/interactions",
        &form(&click),
        Some((SECRET, now())),
    ));
    assert_eq!(answer.0, 200);
    let kept = server.spool()["messages"].clone();
    let id = kept
        .as_array()
        .unwrap()
        .iter()
        .find_map(|m| m["silenced"]["silence"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("the silence's id kept with the mark: {kept:#}"));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let with = |cert: bool| {
        let settings = tls::TlsSettings {
            ssl_ca: Some(ca_file.display().to_string()),
            ssl_cert: cert.then(|| client_cert.display().to_string()),
            ssl_key: cert.then(|| client_key.display().to_string()),
            ..Default::default()
        };
        let dialer = Dialer::new(
            &alert_handler_host::NetSettings::default(),
            tls::client_config(&settings, "test").unwrap(),
        );
        Alertmanagers::new(std::slice::from_ref(&am_url), None, dialer).unwrap()
    };
    let silence = runtime
        .block_on(with(true).get(&id))
        .unwrap()
        .expect("the silence is in Alertmanager");
    assert_eq!(silence.status.state, "active");
    assert_eq!(silence.created_by, "@on-call (U0ANA)");
    let refused = runtime.block_on(with(false).get(&id));
    assert!(
        refused.is_err(),
        "without a client certificate: {refused:?}"
    );
    drop(am);
}

/// The host's egress rules hold for Alertmanager too: an
/// `--alertmanager-url` whose address `--deny-cidrs` denies is never
/// connected to; the click is answered, the clicker told why, and
/// nothing is marked.
#[test]
fn an_alertmanager_the_deny_list_forbids_is_never_reached() {
    use host_test::slack_clicks::{block_actions, form, now, request};
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    // Where the Alertmanager would be: a listener counting connections.
    let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let am_url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "{}layout = \"blocks\"\nactions = \"silence\"\nsigning-secret = \"{SECRET}\"\n",
            web_api_config(&slack)
        ),
    );
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &[
            "--alertmanager-url",
            &am_url,
            "--deny-cidrs",
            "127.0.0.2/32",
        ],
    );
    let body = payload(&[firing("db09")]);
    let (status, answer) = server.request(&format!(
        "POST /alertmanager?channel=%23ops HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(status, 202, "{answer}");
    wait_until("the alert's message posted and kept", || {
        let messages = slack.messages();
        messages.len() == 1
            && server.spool()["messages"]
                .as_array()
                .is_some_and(|kept| kept.iter().any(|m| m["ts"] == messages[0].ts))
    });
    let m = slack.messages().into_iter().next().unwrap();
    let value = button_value(&m.body, "silence:1h").expect("a Silence 1h button");
    let click = block_actions(
        "silence:1h",
        &value,
        "U0ANA",
        &m.channel_id,
        &m.ts,
        &format!("{}/actions/T0001/1/response", slack.url()),
    );
    let before = slack.requests().len();
    let answer = server.request(&request(
        "/slack/interactions",
        &form(&click),
        Some((SECRET, now())),
    ));
    assert_eq!(answer.0, 200);
    wait_until("the clicker's notice", || {
        slack.requests()[before..].iter().any(|r| {
            r.path.ends_with("/response")
                && String::from_utf8_lossy(&r.body).contains("Not silenced")
        })
    });
    let notice = slack.requests()[before..]
        .iter()
        .find(|r| r.path.ends_with("/response"))
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .unwrap();
    assert!(
        notice.contains("is denied (in 127.0.0.2/32)"),
        "the notice says it is denied: {notice}"
    );
    assert!(
        listener.accept().is_err(),
        "nothing connected to the denied address"
    );
    let kept = server.spool()["messages"].clone();
    assert!(
        kept.as_array()
            .unwrap()
            .iter()
            .all(|m| m.get("silenced").is_none_or(Value::is_null)),
        "nothing marked: {kept:#}"
    );
}

/// An alert posted to serve's Kapacitor intake may not claim to come from
/// Alertmanager (`taskName: alertmanager`): its labels would become a
/// silence's matchers in Alertmanager at a Silence click. Refused, naming
/// the field; nothing stored.
#[test]
fn an_alert_posted_to_the_kapacitor_intake_may_not_claim_alertmanager() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    let body = json!({"id": "spoof", "message": "m", "time": "2026-12-06T10:00:00Z",
        "level": "CRITICAL", "taskName": "alertmanager",
        "context": {"labels.severity": "critical"}})
    .to_string();
    let (status, answer) = server.request(&format!(
        "POST /?channel=%23ops HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("taskName: `alertmanager` is kept"),
        "{answer}"
    );
    assert_eq!(server.spool()["pending"], json!([]));
}
