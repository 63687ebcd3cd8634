#!/usr/bin/env bash
# Every test: the guest's unit tests (native), the host's unit tests, and
# the integration tests that build the component and run it in wasmtime
# against the Slack stand-in on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace
