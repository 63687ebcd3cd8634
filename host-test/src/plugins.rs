//! A plugin directory: every `NAME.wasm` with its configuration `NAME.toml`
//! and the operator's egress allowlist `NAME.egress.toml` beside it (see
//! [`crate::egress`]), loaded, instantiated and configured up front so that
//! a bad plugin or configuration is reported before any alert arrives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::egress::Allowlist;
use crate::host::Host;
use crate::runtime::{ConfigSummary, HandlerError, Plugin, Runtime};

/// A `NAME.wasm` and its `NAME.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub wasm: PathBuf,
    pub config: PathBuf,
}

/// Lists the plugins in `dir`, sorted by name. A `.wasm` without its
/// `.toml` is an error naming the file that is missing.
pub fn scan(dir: &Path) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let listing = std::fs::read_dir(dir)
        .with_context(|| format!("reading plugin directory {}", dir.display()))?;
    for item in listing {
        let path = item?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
            continue;
        }
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let config = path.with_extension("toml");
        if !config.is_file() {
            bail!(
                "plugin {}: its configuration {} is missing",
                path.display(),
                config.display()
            );
        }
        entries.push(Entry {
            name,
            wasm: path,
            config,
        });
    }
    if entries.is_empty() {
        bail!("plugin directory {} has no NAME.wasm files", dir.display());
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// A configured plugin.
pub struct Loaded {
    pub name: String,
    pub summary: ConfigSummary,
    pub plugin: Plugin,
    /// The compiled component, for more instances.
    pub runtime: Runtime,
    /// The configuration it accepted.
    pub config: String,
}

/// What went wrong loading a directory.
pub enum LoadError {
    /// The directory, a file or the component could not be loaded.
    Host(anyhow::Error),
    /// A plugin refused its configuration.
    Config { name: String, error: HandlerError },
}

/// Loads and configures every plugin in `dir`.
pub fn load(
    dir: &Path,
    host: &Arc<Host>,
    cache_dir: Option<&Path>,
) -> Result<Vec<Loaded>, LoadError> {
    let mut loaded = Vec::new();
    for entry in scan(dir).map_err(LoadError::Host)? {
        let text = std::fs::read_to_string(&entry.config)
            .with_context(|| format!("reading {}", entry.config.display()))
            .map_err(LoadError::Host)?;
        let allowlist = Allowlist::for_plugin(&entry.wasm).map_err(LoadError::Host)?;
        let runtime = Runtime::open(host.clone(), &entry.wasm, cache_dir)
            .map_err(LoadError::Host)?
            .with_allowlist(allowlist);
        let mut plugin = runtime.instantiate().map_err(LoadError::Host)?;
        match plugin.configure(&text).map_err(LoadError::Host)? {
            Ok(summary) => loaded.push(Loaded {
                name: entry.name,
                summary,
                plugin,
                runtime,
                config: text,
            }),
            Err(error) => {
                return Err(LoadError::Config {
                    name: entry.name,
                    error,
                })
            }
        }
    }
    Ok(loaded)
}
