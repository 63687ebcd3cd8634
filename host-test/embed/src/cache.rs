//! Compiled components kept on disk: compiling the component takes most of
//! a cold start, loading a precompiled one takes milliseconds. The file name
//! carries a SHA-256 of the wasm bytes and of the engine's compatibility
//! hash, so a changed plugin or a changed engine compiles afresh.
//!
//! A cached file is machine code the host will run: the cache directory must
//! be as trusted as the plugin directory.

use std::hash::{Hash, Hasher};
use std::path::Path;

use anyhow::{Context, Result};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Compiled now (and written to the cache).
    Compiled,
    /// Loaded precompiled from the cache.
    Cached,
}

/// Feeds `Hash` values into SHA-256.
struct Sha256(ring::digest::Context);

impl Hasher for Sha256 {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0
    }
}

fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut hasher = Sha256(ring::digest::Context::new(&ring::digest::SHA256));
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.write(wasm);
    hasher.0.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The component `wasm` (read from, or named as, `wasm_path`), from
/// `cache_dir` when it was compiled before by a compatible engine, else
/// compiled and cached. The cached file is found by the bytes' digest, so
/// the same bytes from another path (or built into the binary) share it.
pub fn load(
    engine: &Engine,
    wasm_path: &Path,
    wasm: &[u8],
    cache_dir: &Path,
) -> Result<(Component, Source)> {
    let stem: String = wasm_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cached = cache_dir.join(format!("{stem}-{}.cwasm", key(engine, wasm)));
    if cached.is_file() {
        // SAFETY: the file was written below by `precompile_component` of an
        // engine with the same compatibility hash (it is in the name); the
        // cache directory is trusted like the plugin directory.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok((component, Source::Cached));
        }
    }
    let compiled = engine
        .precompile_component(wasm)
        .map_err(anyhow::Error::from)?;
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    let partial = cached.with_extension(format!("cwasm.{}", std::process::id()));
    std::fs::write(&partial, &compiled)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &cached).with_context(|| format!("writing {}", cached.display()))?;
    // SAFETY: these bytes were produced just now by this engine.
    let component =
        unsafe { Component::deserialize(engine, &compiled) }.map_err(anyhow::Error::from)?;
    Ok((component, Source::Compiled))
}
