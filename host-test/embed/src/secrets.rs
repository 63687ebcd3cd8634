//! What of the host's environment and files an instance may read while it
//! configures itself: Kapacitor's `KAPACITOR_SLACK_<n>_<KEY>` variables,
//! and the directories of the files its configuration names (`token-file`,
//! `url-file`, in its text or in those variables), read-only, each at its
//! own path. Nothing else: an instance sees no other variable and no other
//! directory. (WASI gives directories, not single files: keep secret files
//! in a directory of their own.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// The prefix of the variables an instance sees.
pub const ENV_PREFIX: &str = "KAPACITOR_SLACK_";

/// The keys whose values are files the instance reads.
const FILE_KEYS: [&str; 2] = ["token-file", "url-file"];

/// The variables and directories `config` may read, from `vars` (the host's
/// environment).
pub fn grants(
    config: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> (Vec<(String, String)>, Vec<PathBuf>) {
    let env: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    let mut files: Vec<String> = Vec::new();
    // The configuration's own keys; a text that does not parse names no
    // file (the instance reports the syntax error).
    if let Ok(doc) = config.parse::<toml::Table>() {
        let sections: Vec<&toml::Table> = match doc.get("slack") {
            Some(toml::Value::Table(t)) => vec![t],
            Some(toml::Value::Array(items)) => items.iter().filter_map(|i| i.as_table()).collect(),
            _ => Vec::new(),
        };
        for section in sections {
            for key in FILE_KEYS {
                if let Some(path) = section.get(key).and_then(|v| v.as_str()) {
                    files.push(path.to_string());
                }
            }
        }
    }
    // And those the variables name (`KAPACITOR_SLACK_0_TOKEN_FILE`).
    for (name, value) in &env {
        if name.ends_with("_TOKEN_FILE") || name.ends_with("_URL_FILE") {
            files.push(value.clone());
        }
    }
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter(|f| !f.is_empty())
        .filter_map(|f| Path::new(f).parent().map(Path::to_path_buf))
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            }
        })
        .collect();
    (env, dirs.into_iter().collect())
}

/// The WASI context for an instance about to be configured with `config`.
/// A directory that cannot be opened is left out: the instance then says
/// which file it could not read.
pub fn wasi_for(config: &str) -> WasiCtx {
    let (env, dirs) = grants(config, std::env::vars());
    let mut wasi = WasiCtxBuilder::new();
    for (name, value) in &env {
        wasi.env(name, value);
    }
    for dir in dirs {
        if let Some(guest) = dir.to_str() {
            let _ = wasi.preopened_dir(&dir, guest, wasmtime_wasi::FsPerms::ReadOnly);
        }
    }
    wasi.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_slack_variables_and_the_named_files_directories() {
        let config = "[[slack]]\ntoken-file = \"/run/secrets/slack/token\"\n[[slack]]\nurl-file = \"/etc/hooks/url\"\nssl-ca = \"/etc/ssl/ca.pem\"\n";
        let (env, dirs) = grants(
            config,
            vars(&[
                ("HOME", "/root"),
                ("AWS_SECRET_ACCESS_KEY", "no"),
                ("KAPACITOR_SLACK_0_CHANNEL", "#ops"),
                ("KAPACITOR_SLACK_1_TOKEN_FILE", "/var/lib/tokens/t"),
                ("KAPACITOR_HTTP_BIND_ADDRESS", "no"),
            ]),
        );
        assert_eq!(
            env,
            vars(&[
                ("KAPACITOR_SLACK_0_CHANNEL", "#ops"),
                ("KAPACITOR_SLACK_1_TOKEN_FILE", "/var/lib/tokens/t"),
            ])
        );
        assert_eq!(
            dirs,
            [
                PathBuf::from("/etc/hooks"),
                PathBuf::from("/run/secrets/slack"),
                PathBuf::from("/var/lib/tokens"),
            ]
        );
    }

    #[test]
    fn a_table_section_a_relative_file_and_a_bad_text() {
        let (_, dirs) = grants("[slack]\ntoken-file = \"token\"\n", vars(&[]));
        assert_eq!(dirs, [PathBuf::from(".")]);
        let (env, dirs) = grants("[slack\n", vars(&[]));
        assert!(env.is_empty() && dirs.is_empty());
    }
}
