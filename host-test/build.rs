//! Builds the guest component (the workspace's root package) for
//! `wasm32-wasip2` in release, and passes its path on as
//! `SLACK_HANDLER_WASM`, so the host, its tests and its demo always run the
//! component built from this checkout.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let host_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host_dir.parent().unwrap().to_path_buf();
    for watched in ["src", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // Its own target directory: the outer cargo holds the lock on ours.
    let target_dir = root.join("target").join("guest");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "slack-alert-handler",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .status()
        .expect("could not run cargo to build the guest component");
    if !status.success() {
        panic!(
            "building the guest component failed (its errors are above); if the \
             wasm32-wasip2 target is missing, run `rustup target add wasm32-wasip2`"
        );
    }
    let wasm = target_dir.join("wasm32-wasip2/release/slack_alert_handler.wasm");
    println!("cargo:rustc-env=SLACK_HANDLER_WASM={}", wasm.display());
}
