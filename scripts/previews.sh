#!/usr/bin/env bash
# Remakes the README's pictures of each layout (docs/preview/*.png): the page
# `host-test preview` writes for a firing and a recovered alert, drawn by
# headless Chromium (Debian's `chromium`, with fonts-noto-color-emoji for the
# emoji). Nothing is sent anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
browser="${CHROMIUM:-$(command -v chromium || true)}"
[ -n "$browser" ] || { echo "needs chromium (apt-get install chromium fonts-noto-color-emoji)" >&2; exit 2; }
cargo build -q -p host-test
out=docs/preview
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for state in critical recovered; do
  alert="examples/alerts/cpu-$state.json"
  name="$state"; [ "$state" = critical ] && name=firing
  target/debug/host-test preview --config examples/kapacitor.conf --alert "$alert" \
    --html "$tmp/kapacitor-$name.html" >/dev/null
  for layout in attachment blocks; do
    target/debug/host-test preview --config examples/slack-rendered.conf --alert "$alert" \
      --option "layout=$layout" --html "$tmp/$layout-$name.html" >/dev/null
  done
done
# The buttons, and the same message after someone acknowledged it.
target/debug/host-test preview --config examples/slack-buttons.conf \
  --alert examples/alerts/cpu-critical.json --html "$tmp/buttons-firing.html" >/dev/null
target/debug/host-test preview --config examples/slack-buttons.conf \
  --alert examples/alerts/cpu-critical.json --option acknowledged-by=U024BE7LH \
  --option acknowledged-at=1764460800 --html "$tmp/buttons-acknowledged.html" >/dev/null
# A storm: twelve alerts like the CPU one in one message (the line names
# each by its id).
target/debug/host-test preview --config examples/slack-buttons.conf \
  --alert examples/alerts/cpu-critical.json --storm 12 --option 'title={{id}}' \
  --html "$tmp/storm.html" >/dev/null
for page in "$tmp"/*.html; do
  png="$out/$(basename "$page" .html).png"
  size=720,300; [ "$(basename "$page")" = storm.html ] && size=720,420
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size="$size" --screenshot="$png" "file://$page" >/dev/null 2>&1
  echo "$png"
done
