//! `mock-slack`: the Slack stand-in alone, printing each request.

use anyhow::bail;
use host_test::mock_slack::MockSlack;
use slack_alertd::say;

/// Runs the stand-in until it stops.
pub fn run(port: u16) -> anyhow::Result<()> {
    let slack = MockSlack::start_on(port)?;
    slack.observe(|r, reply| {
        let auth = if r.header("authorization").is_some() {
            "Bearer [redacted]"
        } else {
            "(none)"
        };
        say!(
            "{} {}{} Authorization: {auth} -> {} {}\n{}",
            r.method,
            r.host,
            r.path,
            reply.status,
            String::from_utf8_lossy(&reply.body),
            serde_json::to_string_pretty(&r.json()).unwrap_or_default()
        );
    });
    say!(
        "Slack stand-in listening on {} (Ctrl-C stops it)",
        slack.url()
    );
    say!(
        "chat.postMessage: POST {}/api/chat.postMessage; webhooks: POST {}/services/...",
        slack.url(),
        slack.url()
    );
    slack.wait();
    bail!("the Slack stand-in stopped")
}
