//! `spool`: what a spool holds, read without disturbing a `serve` writing
//! it; `spool resend`: failed alerts accepted again, for the next `serve`.
//! Both work on the journal file (`--dir`) and on the database several
//! nodes share (`--store`, `--store-url-file`), where the nodes running on
//! it deliver what is resent at once.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};

use super::Failure;
use crate::say;
use crate::serve::Pacing;
use crate::spool::{Spool, KEEP_FINISHED};
use crate::store::postgres::{self, connect::StoreUrl, PgStore};
use crate::store::{self, Entry, Job, Listing, Reads, StoreError, Writes};

/// `spool`'s flags.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SpoolArgs {
    #[command(subcommand)]
    action: Option<SpoolAction>,
    /// The spool directory.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["store", "store_url_file"])]
    dir: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The database several nodes share, instead of a spool directory.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The PostgreSQL store, as postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "URL", conflicts_with = "store_url_file")]
    store: Option<String>,
    /// A file holding the PostgreSQL store's URL.
    #[arg(long, value_name = "FILE")]
    store_url_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The store's URL, if one was given.
    fn url(&self) -> Result<Option<StoreUrl>, Failure> {
        let url = match (&self.store, &self.store_url_file) {
            (Some(url), _) => StoreUrl::parse(url),
            (None, Some(file)) => StoreUrl::read(file),
            (None, None) => return Ok(None),
        };
        url.map(Some).map_err(|e| Failure::Input(anyhow!(e)))
    }
}

#[derive(Subcommand)]
pub enum SpoolAction {
    /// Send failed alerts again, each as a new alert with the same JSON and
    /// options, for a `serve` started on the spool to deliver. With `serve`
    /// running on it, do the same over HTTP: `POST /spool/resend` with
    /// `{"failed": true}` or `{"ids": [N, ...]}`.
    Resend {
        /// The spool directory.
        #[arg(long, value_name = "DIR", required_unless_present_any = ["store", "store_url_file"])]
        dir: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
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
        (
            Some(SpoolAction::Resend {
                dir,
                store,
                failed,
                id,
            }),
            _,
        ) => match (store.url()?, dir) {
            (Some(url), _) => on_store(url, |store| resend_on_store(store, failed, &id)),
            (None, Some(dir)) => resend(&dir, failed, &id),
            (None, None) => Err(Failure::Input(anyhow!(
                "spool resend needs --dir DIR or --store URL"
            ))),
        },
        (None, dir) => match (args.store.url()?, dir) {
            (Some(url), _) => on_store(url, |store| show_store(store, args.json)),
            (None, Some(dir)) => show(&dir, args.json).map_err(Failure::Host),
            (None, None) => Err(Failure::Input(anyhow!(
                "spool needs --dir DIR or --store URL (or: spool resend --dir DIR --failed)"
            ))),
        },
    }
}

/// Runs `work` on the database at `url`, as a node of its own.
fn on_store(
    url: StoreUrl,
    work: impl FnOnce(&mut PgStore) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut store = PgStore::open(postgres::Settings {
        url,
        node: format!("spool:{}", std::process::id()),
        address: None,
        lease: std::time::Duration::from_secs(10),
        rules: Pacing::default().rules(),
        keep_finished: KEEP_FINISHED,
    })
    .map_err(Failure::Host)?;
    work(&mut store)
}

/// Runs a store's job on this thread.
fn wait<T>(job: Job<T>) -> Result<T, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Host(e.into()))?;
    runtime.block_on(job).map_err(|e| match e {
        StoreError::NotFailed { .. } => Failure::Input(anyhow!("{e}")),
        e => Failure::Host(anyhow!("{e}")),
    })
}

/// The most entries of each list shown from a database.
const SHOWN: usize = 1_000;

/// What the database holds: each list's count and its first entries.
fn show_store(store: &mut PgStore, json: bool) -> Result<(), Failure> {
    let lists = wait(store.lists(&Listing::ALL, None, SHOWN))?;
    let page = |list: Listing| -> Vec<Entry> {
        lists
            .pages
            .iter()
            .find(|(l, _)| *l == list)
            .map(|(_, p)| p.items.clone())
            .unwrap_or_default()
    };
    let count = |list: Listing| {
        lists
            .counts
            .iter()
            .find(|(l, _)| *l == list)
            .map_or(0, |(_, n)| *n)
    };
    if json {
        say!(
            "{}",
            serde_json::json!({
                "pending": page(Listing::Pending),
                "finished": page(Listing::Finished),
                "messages": page(Listing::Messages),
                "resendable": page(Listing::Resendable),
                "duplicates": page(Listing::Duplicates),
            })
        );
        return Ok(());
    }
    for list in Listing::ALL {
        let entries = page(list);
        let more = count(list).saturating_sub(entries.len());
        say!("{} {}", count(list), list.name());
        for entry in entries {
            say!("  {}", serde_json::to_string(&entry).unwrap_or_default());
        }
        if more > 0 {
            say!(
                "  ... and {more} more (GET /spool?list={} pages them)",
                list.name()
            );
        }
    }
    Ok(())
}

/// `spool resend --store`: failed alerts accepted again, delivered at
/// once by the nodes running on the database.
fn resend_on_store(store: &mut PgStore, all_failed: bool, ids: &[u64]) -> Result<(), Failure> {
    let failed = wait(store.resendable((!all_failed).then(|| ids.to_vec())))?;
    let resent = store
        .resend(&failed)
        .map_err(|e| Failure::Input(anyhow!("{e}")))?;
    store::sync_now(store).map_err(|e| Failure::Host(anyhow!("resending: {e}")))?;
    for (old, new) in &resent {
        say!("#{old} resent as #{}", new.id);
    }
    say!(
        "{} alert(s) resent; the nodes on {} deliver them",
        resent.len(),
        store.url()
    );
    Ok(())
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
    // Every ending the journal holds (serve shows its last
    // `--keep-finished`; GET /spool pages them).
    say!("{} finished", spool.finished().len());
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
/// ended, the alert messages kept, the failed alerts that can be resent;
/// and, as on a database, the duplicate sends (one node alone never makes
/// one).
fn as_json(spool: &Spool) -> serde_json::Value {
    serde_json::json!({
        "pending": spool.pending_ids(),
        "finished": spool.finished().collect::<Vec<_>>(),
        "messages": spool.messages(),
        "resendable": spool
            .failed_alerts()
            .map(|f| serde_json::json!({"id": f.id, "detail": f.detail}))
            .collect::<Vec<_>>(),
        "duplicates": [],
    })
}
