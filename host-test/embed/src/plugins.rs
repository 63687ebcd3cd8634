//! A plugin directory: every `NAME.wasm` with its configuration `NAME.toml`
//! and the operator's egress allowlist `NAME.egress.toml` beside it (see
//! [`crate::egress`]), loaded, instantiated and configured up front so that
//! a bad plugin or configuration is reported before any alert arrives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::bindings::{ConfigSummary, Description, HandlerError};
use crate::egress::Allowlist;
use crate::host::Host;
use crate::runtime::{Instance, Runtime};

/// Lists the plugins in `dir` (every `NAME.wasm`), sorted by name.
pub fn scan(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut wasm = Vec::new();
    let listing = std::fs::read_dir(dir)
        .with_context(|| format!("reading plugin directory {}", dir.display()))?;
    for item in listing {
        let path = item?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("wasm") && path.file_stem().is_some() {
            wasm.push(path);
        }
    }
    if wasm.is_empty() {
        bail!("plugin directory {} has no NAME.wasm files", dir.display());
    }
    wasm.sort();
    Ok(wasm)
}

/// A configured plugin.
pub struct Plugin {
    /// The plugin's file name without `.wasm`.
    pub name: String,
    /// What it says it is (`describe`).
    pub description: Description,
    /// Its configuration's summary.
    pub summary: ConfigSummary,
    /// A configured instance.
    pub instance: Instance,
    /// The compiled component, for more instances.
    pub runtime: Runtime,
    /// The configuration it accepted.
    pub config: String,
}

/// A plugin that did not load, and why; the others load without it.
pub struct Broken {
    /// Its `NAME.wasm`.
    pub file: PathBuf,
    /// Its kind, when it got as far as saying.
    pub kind: Option<String>,
    /// Why it did not load.
    pub reason: Reason,
}

/// Why a plugin did not load.
pub enum Reason {
    /// A file is missing or unreadable, or the component would not compile
    /// or instantiate.
    Host(anyhow::Error),
    /// It refused its configuration (or the operator's egress allowlist
    /// refused what it asked for).
    Config(HandlerError),
    /// Another plugin handles the same kind: which one serves it would be a
    /// guess.
    SameKind {
        /// The other plugin of the same kind.
        other: PathBuf,
    },
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {}: ", self.file.display())?;
        match &self.reason {
            Reason::Host(e) => write!(f, "{e:#}"),
            Reason::Config(e) => write!(f, "{}", e.describe()),
            Reason::SameKind { other } => write!(
                f,
                "{} handles kind `{}` too; keep one of them in the directory",
                other.display(),
                self.kind.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// A plugin directory, loaded: what serves and what did not load.
pub struct Directory {
    /// The plugins that loaded, by file name.
    pub loaded: Vec<Plugin>,
    /// The plugins that did not, each with why.
    pub broken: Vec<Broken>,
}

impl Directory {
    /// The plugin for `kind` (or named `kind`), or why there is none: its
    /// own failure when it is broken, else `None`.
    pub fn take(&mut self, kind: &str) -> Result<Plugin, Option<&Broken>> {
        if let Some(at) = self
            .loaded
            .iter()
            .position(|l| l.description.kind == kind || l.name == kind)
        {
            return Ok(self.loaded.remove(at));
        }
        Err(self.broken.iter().find(|b| {
            b.kind.as_deref() == Some(kind)
                || b.file.file_stem().and_then(|s| s.to_str()) == Some(kind)
        }))
    }

    /// What loaded, as `name (kind version)`.
    pub fn names(&self) -> Vec<String> {
        self.loaded
            .iter()
            .map(|l| {
                format!(
                    "{} ({} {})",
                    l.name, l.description.kind, l.description.version
                )
            })
            .collect()
    }
}

/// Loads every plugin in `dir` on its own: asks each what it is
/// (`describe`), then configures it from `NAME.toml` under the operator's
/// allowlist `NAME.egress.toml`. A plugin that fails is listed in
/// [`Directory::broken`] with the reason; two of one kind are both broken.
/// Only a directory that cannot be read, or holds no plugin, is an error.
pub fn load(dir: &Path, host: &Arc<Host>, cache_dir: Option<&Path>) -> Result<Directory> {
    let mut described = Vec::new();
    let mut broken = Vec::new();
    for wasm in scan(dir)? {
        let config = wasm.with_extension("toml");
        if !config.is_file() {
            broken.push(Broken {
                reason: Reason::Host(anyhow::anyhow!(
                    "its configuration {} is missing",
                    config.display()
                )),
                file: wasm,
                kind: None,
            });
            continue;
        }
        match describe(&wasm, host, cache_dir) {
            Ok(plugin) => described.push(plugin),
            Err(reason) => broken.push(Broken {
                file: wasm,
                kind: None,
                reason,
            }),
        }
    }
    // Two of one kind: neither serves it.
    let mut loaded = Vec::new();
    for (n, (wasm, description, runtime)) in described.iter().enumerate() {
        let twin = described
            .iter()
            .enumerate()
            .find(|(m, other)| *m != n && other.1.kind == description.kind);
        if let Some((_, other)) = twin {
            broken.push(Broken {
                file: wasm.clone(),
                kind: Some(description.kind.clone()),
                reason: Reason::SameKind {
                    other: other.0.clone(),
                },
            });
            continue;
        }
        match configure(wasm, runtime) {
            Ok((summary, plugin, config)) => loaded.push(Plugin {
                name: stem(wasm),
                description: description.clone(),
                summary,
                instance: plugin,
                runtime: runtime.clone(),
                config,
            }),
            Err(reason) => broken.push(Broken {
                file: wasm.clone(),
                kind: Some(description.kind.clone()),
                reason,
            }),
        }
    }
    Ok(Directory { loaded, broken })
}

fn stem(wasm: &Path) -> String {
    wasm.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string()
}

/// Compiles a plugin and asks it what it is.
fn describe(
    wasm: &Path,
    host: &Arc<Host>,
    cache_dir: Option<&Path>,
) -> Result<(PathBuf, Description, Runtime), Reason> {
    let allowlist = Allowlist::for_plugin(wasm).map_err(Reason::Host)?;
    let runtime = Runtime::open(host.clone(), wasm, cache_dir)
        .map_err(Reason::Host)?
        .with_allowlist(allowlist);
    let description = runtime
        .instantiate()
        .and_then(|mut p| p.describe())
        .map_err(|e| Reason::Host(e.context("asking it what it is (describe)")))?;
    // Kapacitor's Slack variables and the files they name are the slack
    // plugin's to read, no other kind's.
    let runtime = runtime.of_kind(&description.kind);
    Ok((wasm.to_path_buf(), description, runtime))
}

/// Configures a described plugin from its `NAME.toml`.
fn configure(wasm: &Path, runtime: &Runtime) -> Result<(ConfigSummary, Instance, String), Reason> {
    let config = wasm.with_extension("toml");
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("reading {}", config.display()))
        .map_err(Reason::Host)?;
    let mut plugin = runtime.instantiate_for(&text).map_err(Reason::Host)?;
    match plugin.configure(&text).map_err(Reason::Host)? {
        Ok(summary) => Ok((summary, plugin, text)),
        Err(error) => Err(Reason::Config(error)),
    }
}
