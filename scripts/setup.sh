#!/usr/bin/env bash
# Everything a fresh machine needs beyond the Rust toolchain: the wasm target
# the component is built for. (A rust-toolchain.toml would not install it:
# rustup's auto-install is off here.)
set -euo pipefail
rustup target add wasm32-wasip2
