//! `spool`: what a spool holds, read without disturbing a `serve` writing
//! it; `spool resend`: failed alerts accepted again, for the next `serve`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};

use super::Failure;
use crate::say;
use crate::spool::Spool;

/// `spool`'s flags.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SpoolArgs {
    #[command(subcommand)]
    action: Option<SpoolAction>,
    /// The spool directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum SpoolAction {
    /// Send failed alerts again, each as a new alert with the same JSON and
    /// options, for a `serve` started on the spool to deliver. With `serve`
    /// running on it, do the same over HTTP: `POST /spool/resend` with
    /// `{"failed": true}` or `{"ids": [N, ...]}`.
    Resend {
        /// The spool directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Every failed alert the spool keeps.
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        failed: bool,
        /// A failed alert's id (repeatable).
        #[arg(long, value_name = "N")]
        id: Vec<u64>,
    },
}

/// Runs `spool` or `spool resend`.
pub fn run(args: SpoolArgs) -> Result<(), Failure> {
    match (args.action, args.dir) {
        (Some(SpoolAction::Resend { dir, failed, id }), _) => resend(&dir, failed, &id),
        (None, Some(dir)) => show(&dir, args.json).map_err(Failure::Host),
        (None, None) => Err(Failure::Input(anyhow!(
            "spool needs --dir DIR (or: spool resend --dir DIR --failed)"
        ))),
    }
}

fn show(dir: &Path, json: bool) -> anyhow::Result<()> {
    if !dir.join("journal.jsonl").exists() {
        bail!("{} holds no spool", dir.display());
    }
    let spool = Spool::open_read_only(dir)?;
    let pending = spool.pending();
    if json {
        say!("{}", as_json(&spool));
        return Ok(());
    }
    say!("{} pending", pending.len());
    for p in &pending {
        let id = serde_json::from_str::<serde_json::Value>(&p.alert)
            .ok()
            .and_then(|v| v["id"].as_str().map(String::from));
        say!("  #{} pending  alert {}", p.id, id.unwrap_or_default());
    }
    for f in spool.finished() {
        let plural = if f.attempts == 1 { "" } else { "s" };
        say!(
            "  #{} {:?} after {} attempt{plural}  {}",
            f.id,
            f.status,
            f.attempts,
            f.detail
        );
    }
    let messages = spool.messages();
    say!("{} alert message(s) kept for later events", messages.len());
    for m in &messages {
        let workspace = if m.workspace.is_empty() {
            "(default)"
        } else {
            &m.workspace
        };
        say!(
            "  alert {}  workspace \"{workspace}\"  --previous-message {}:{}",
            m.key,
            m.channel_id,
            m.ts
        );
    }
    Ok(())
}

/// `spool resend`: failed alerts accepted again, for the next serve.
fn resend(dir: &Path, all_failed: bool, ids: &[u64]) -> Result<(), Failure> {
    if !dir.join("journal.jsonl").exists() {
        return Err(Failure::Input(anyhow!("{} holds no spool", dir.display())));
    }
    let mut spool = Spool::open(dir, u64::MAX).map_err(|e| {
        Failure::Input(e.context("to resend while serve runs, POST /spool/resend to it"))
    })?;
    let ids: Vec<u64> = if all_failed {
        spool.failed_alerts().map(|f| f.id).collect()
    } else {
        ids.to_vec()
    };
    let resent = spool
        .resend(&ids)
        .map_err(|e| Failure::Input(anyhow!("{e}")))?;
    for (old, new) in &resent {
        say!("#{old} resent as #{new}");
    }
    say!(
        "{} alert(s) resent; serve delivers them when it starts on {}",
        resent.len(),
        dir.display()
    );
    Ok(())
}

/// The spool as `spool --json` shows it: the pending ids, how the others
/// ended, the alert messages kept, the failed alerts that can be resent.
fn as_json(spool: &Spool) -> serde_json::Value {
    serde_json::json!({
        "pending": spool.pending_ids(),
        "finished": spool.finished().collect::<Vec<_>>(),
        "messages": spool.messages(),
        "resendable": spool
            .failed_alerts()
            .map(|f| serde_json::json!({"id": f.id, "detail": f.detail}))
            .collect::<Vec<_>>(),
    })
}
