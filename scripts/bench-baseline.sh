#!/usr/bin/env bash
# Builds `host-test` and its component from an earlier commit (default
# ee8311d: serve before group commit, one fsync per alert, where issue 9
# started) into .tools/baseline-COMMIT/, for
#   INTAKE_BASELINE=$(scripts/bench-baseline.sh) cargo bench -p host-test --bench intake
# The build shares this checkout's target directory (or CARGO_TARGET_DIR,
# when set: a worktree sharing another checkout's), so only the host crate
# and the component are rebuilt. Prints the binary's path; the component
# lies beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
target="${CARGO_TARGET_DIR:-$root/target}"
commit="${1:-ee8311d}"
out="$root/.tools/baseline-$commit"
if [ ! -x "$out/host-test" ]; then
  tree="$(mktemp -d)"
  trap 'git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
  git worktree add --detach "$tree" "$commit" >/dev/null
  (cd "$tree" && CARGO_TARGET_DIR="$target" cargo build --profile bench -p host-test --bin host-test >&2)
  mkdir -p "$out"
  cp "$target/release/host-test" "$out/host-test"
  cp "$tree/target/guest/wasm32-wasip2/release/slack_alert_handler.wasm" "$out/"
  # The shared target's host-test is the baseline's now: rebuilt on next use.
  touch host-test/src/main.rs
fi
echo "$out/host-test"
