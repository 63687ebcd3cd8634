//! Builds the guest component (the workspace's root package) and the probe
//! test guest (`probe/`) for `wasm32-wasip2` in release, and passes their
//! paths on as `SLACK_HANDLER_WASM` and `PROBE_WASM`, so the host, its tests
//! and its demo always run the components built from this checkout.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    // The checkout's root: the nearest folder above the package holding
    // the WIT (this script builds for `host-test` and `host-test/daemon`).
    let package = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = package
        .ancestors()
        .find(|dir| dir.join("wit").is_dir())
        .expect("the checkout's root, with wit/")
        .to_path_buf();
    for watched in ["src", "wit", "Cargo.toml", "Cargo.lock", "host-test/probe"] {
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
            "-p",
            "probe-guest",
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
    let out = target_dir.join("wasm32-wasip2/release");
    let handler = out.join("slack_alert_handler.wasm");
    println!("cargo:rustc-env=SLACK_HANDLER_WASM={}", handler.display());
    println!(
        "cargo:rustc-env=PROBE_WASM={}",
        out.join("probe_guest.wasm").display()
    );
}
