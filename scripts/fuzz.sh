#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 20; CI runs a short
# pass). For a long run of one target:
#   cargo +nightly fuzz run config -- -max_total_time=3600
# A crash found becomes a case in tests/corpus/ (with its expected error).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Seed the alert, config and alertmanager targets with the examples and the
# bad-input corpus (the corpus dir is not committed; libFuzzer grows it).
mkdir -p fuzz/corpus/alert fuzz/corpus/config fuzz/corpus/alertmanager fuzz/corpus/interaction
cp examples/alerts/*.json fuzz/corpus/alert/
cp examples/*.conf fuzz/corpus/config/
cp tests/corpus/alertmanager/*.json fuzz/corpus/alertmanager/
cp tests/corpus/interaction/*.json fuzz/corpus/interaction/
for target in alert config options render template response alertmanager interaction storm; do
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 3
done
