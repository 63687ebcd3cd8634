//! What intake refuses before it stores an alert, so a sender learns at
//! once instead of from a failure later: options that are the host's to
//! set (the WIT marks them `host-only`: `previous-channel-id`,
//! `previous-ts`), and options the component would refuse (an unknown key,
//! a bad value, a template that does not compile), learnt from a preview
//! of the alert — the component's own rules, not a copy of them. The
//! component's answer for an option list does not depend on the alert, so
//! it is cached per distinct list: a sender posting the same options over
//! and over pays for one preview.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use anyhow::Result;

use alert_handler_host::{HandlerError, Instance, Runtime};
use kapacitor_formats::alert_json;

use crate::{lock, RECYCLE_AFTER};

/// Distinct option lists whose answer is remembered, and their total size.
const CACHED_LISTS: usize = 1_024;
const CACHED_BYTES: usize = 1 << 20;

/// Checks handler options against the host's and the component's rules.
pub struct OptionCheck {
    host_only: Vec<String>,
    runtime: Runtime,
    config: String,
    /// Configured instances, each with the previews it made.
    instances: Vec<tokio::sync::Mutex<(Instance, u32)>>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    answers: HashMap<Vec<(String, String)>, Result<(), String>>,
    order: VecDeque<Vec<(String, String)>>,
    bytes: usize,
}

impl Cache {
    fn size(options: &[(String, String)]) -> usize {
        options.iter().map(|(k, v)| k.len() + v.len() + 16).sum()
    }

    fn insert(&mut self, options: Vec<(String, String)>, answer: Result<(), String>) {
        let size = Cache::size(&options);
        if size > CACHED_BYTES / 8 {
            return;
        }
        self.bytes += size;
        self.order.push_back(options.clone());
        self.answers.insert(options, answer);
        while self.answers.len() > CACHED_LISTS || self.bytes > CACHED_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.bytes -= Cache::size(&oldest);
            self.answers.remove(&oldest);
        }
    }
}

impl OptionCheck {
    /// A check with `instances` instances of the component configured with
    /// `config` (one per intake thread is plenty).
    pub async fn new(runtime: &Runtime, config: &str, instances: usize) -> Result<OptionCheck> {
        let mut first = runtime.configured_async(config).await?;
        let host_only = first
            .describe_async()
            .await?
            .options
            .into_iter()
            .filter(|s| s.host_only)
            .map(|s| s.name)
            .collect();
        let mut all = vec![tokio::sync::Mutex::new((first, 0))];
        for _ in 1..instances.max(1) {
            all.push(tokio::sync::Mutex::new((
                runtime.configured_async(config).await?,
                0,
            )));
        }
        Ok(OptionCheck {
            host_only,
            runtime: runtime.clone(),
            config: config.to_string(),
            instances: all,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The options that are the host's to set.
    pub fn host_only(&self) -> &[String] {
        &self.host_only
    }

    /// Refuses an option the host reserves, naming it.
    pub fn refuse_host_only(&self, options: &[(String, String)]) -> Result<(), String> {
        match options.iter().find(|(k, _)| self.host_only.contains(k)) {
            Some((key, _)) => Err(format!(
                "option `{key}` is the host's to set, not a sender's: serve passes it from the alert's earlier message"
            )),
            None => Ok(()),
        }
    }

    /// `Ok` when the alert (Kapacitor's JSON) may be stored with `options`,
    /// else what is wrong, naming the option.
    pub async fn check(&self, alert: &str, options: &[(String, String)]) -> Result<(), String> {
        self.refuse_host_only(options)?;
        if options.is_empty() {
            return Ok(());
        }
        let mut key = options.to_vec();
        key.sort();
        if let Some(answer) = lock(&self.cache).answers.get(&key) {
            return answer.clone();
        }
        let event = alert_json::decode(alert).map_err(|e| format!("{e:#}"))?;
        let answer = self.preview(&event, options).await?;
        lock(&self.cache).insert(key, answer.clone());
        answer
    }

    /// The component's answer to a preview: `Ok(Err(..))` when it refused
    /// the options; `Err(..)` when it could not answer (not cached).
    async fn preview(
        &self,
        event: &alert_handler_host::AlertEvent,
        options: &[(String, String)],
    ) -> Result<Result<(), String>, String> {
        let idle = self.instances.iter().find_map(|m| m.try_lock().ok());
        let mut slot = match idle {
            Some(slot) => slot,
            None => self.instances[0].lock().await,
        };
        slot.1 += 1;
        if slot.1 > RECYCLE_AFTER {
            if let Ok(fresh) = self.runtime.configured_async(&self.config).await {
                *slot = (fresh, 1);
            }
        }
        match slot.0.preview_alert_async(event, options).await {
            Ok(Ok(_)) => Ok(Ok(())),
            Ok(Err(
                e @ (HandlerError::UnknownOption(_)
                | HandlerError::InvalidOption(_)
                | HandlerError::WorkspaceNotFound(_)
                | HandlerError::WorkspaceDisabled(_)),
            )) => Ok(Err(e.describe())),
            // Anything else is not about the options: delivery will say.
            Ok(Err(_)) => Ok(Ok(())),
            Err(trap) => {
                // A trapped instance is dead: replaced now.
                if let Ok(fresh) = self.runtime.configured_async(&self.config).await {
                    *slot = (fresh, 0);
                }
                Err(format!(
                    "the handler failed on these options: {}",
                    alert_handler_host::trap_reason(&trap)
                ))
            }
        }
    }
}
