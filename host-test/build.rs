//! Builds the guest component (the workspace's root package), the probe
//! test guest (`probe/`) and the example webhook plugin
//! (`examples/webhook-plugin/`) for `wasm32-wasip2` in release, and passes
//! their paths on as `SLACK_HANDLER_WASM`, `PROBE_WASM` and `WEBHOOK_WASM`,
//! so the host, its tests and its demo always run the components built from
//! this checkout.
//!
//! Each is linked as a core module (`--skip-wit-component`), shrunk by
//! binaryen's `wasm-opt -Oz` where it is installed (`WASM_OPT` names
//! another; Debian's `binaryen`, which `scripts/setup.sh` installs), then
//! made a component with `wit-component`, the library `wasm-component-ld`
//! itself uses: the same component, a fifth smaller. Without `wasm-opt`
//! it is built as before, unshrunk, and a warning says so.

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
    for watched in [
        "src",
        "wit",
        "Cargo.toml",
        "Cargo.lock",
        "host-test/probe",
        "examples/webhook-plugin",
    ] {
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
            "-p",
            "webhook-alert-handler",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        // Linked as a core module: made a component below.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Clink-arg=--skip-wit-component")
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
    println!("cargo:rerun-if-env-changed=WASM_OPT");
    for name in [
        "slack_alert_handler",
        "probe_guest",
        "webhook_alert_handler",
    ] {
        componentize(&out.join(format!("{name}.wasm")));
    }
    let handler = out.join("slack_alert_handler.wasm");
    println!("cargo:rustc-env=SLACK_HANDLER_WASM={}", handler.display());
    println!(
        "cargo:rustc-env=PROBE_WASM={}",
        out.join("probe_guest.wasm").display()
    );
    println!(
        "cargo:rustc-env=WEBHOOK_WASM={}",
        out.join("webhook_alert_handler.wasm").display()
    );
}

/// Makes the core module cargo linked at `path` a component, in place,
/// shrunk by `wasm-opt` first where there is one. A file that is a
/// component already (cargo had nothing to relink) is left as it is.
///
/// Two packages run this script (`host-test` and `slack-alertd`), and
/// cargo may run them at once: each works on files of its own and renames
/// its result over `path` (atomic), so the other reads the whole core
/// module or the whole component, never half of either.
fn componentize(path: &std::path::Path) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("reading the guest {}: {e}", path.display()));
    // A component's header says layer 1; a core module's, version 1.
    if bytes.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00]) {
        return;
    }
    let module = shrink(path).unwrap_or(bytes);
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("making {} a component: {e:#}", path.display()));
    let ours = path.with_extension(format!("{}.component", std::process::id()));
    std::fs::write(&ours, component)
        .and_then(|()| std::fs::rename(&ours, path))
        .unwrap_or_else(|e| panic!("writing the component {}: {e}", path.display()));
}

/// The core module at `path` after `wasm-opt -Oz`, with the features
/// `wasm32-wasip2` code uses; `None` (and a warning) without `wasm-opt`.
fn shrink(path: &std::path::Path) -> Option<Vec<u8>> {
    let wasm_opt = env::var_os("WASM_OPT").unwrap_or_else(|| "wasm-opt".into());
    let shrunk = path.with_extension(format!("{}.opt.wasm", std::process::id()));
    let ran = Command::new(&wasm_opt)
        .arg("-Oz")
        .args([
            "--enable-bulk-memory",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-nontrapping-float-to-int",
            "--enable-multivalue",
            "--enable-reference-types",
        ])
        .arg(path)
        .arg("-o")
        .arg(&shrunk)
        .status();
    match ran {
        Ok(status) if status.success() => {
            let module = std::fs::read(&shrunk).ok();
            let _ = std::fs::remove_file(&shrunk);
            module
        }
        Ok(status) => {
            println!(
                "cargo:warning=wasm-opt failed ({status}) on {}: the component is built unshrunk",
                path.display()
            );
            None
        }
        Err(_) => {
            println!(
                "cargo:warning=binaryen's wasm-opt is not installed: the component is built unshrunk (about a fifth larger); `apt-get install binaryen`, or WASM_OPT=PATH"
            );
            None
        }
    }
}
