#!/usr/bin/env bash
# The demo: Kapacitor's documented examples through the component, in
# wasmtime, against a local Slack stand-in. Nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run -p host-test -- demo
