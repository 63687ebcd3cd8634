#!/usr/bin/env bash
# Every test: the guest's unit tests (native), the host's unit tests, and
# the integration tests that build the component and run it in wasmtime
# against the Slack stand-in on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The browser test draws the HTML preview in headless Chromium: Debian's
# `chromium` (and an emoji font), installed when missing. Without a browser
# that test fails and says what is missing.
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-noto-color-emoji || true
  fi
fi
# The full-disk test mounts a tmpfs (as root: CI runs as root; elsewhere
# it fails saying so, unless HOST_TEST_WITHOUT=root): util-linux's `mount`,
# installed when missing.
if ! command -v mount >/dev/null 2>&1 || ! command -v umount >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mount || true
  fi
fi
# The PostgreSQL store's tests start a throwaway server of their own
# (initdb into a temporary directory; never the system's service): Debian's
# `postgresql` provides initdb and pg_ctl, installed when missing.
if [ -z "${PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
   && ! command -v pg_config >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql || true
  fi
fi
# The Alertmanager tests start a real Alertmanager of their own (their own
# configuration, storage and free ports; never the system's service):
# Debian's `prometheus-alertmanager`, installed when missing (ALERTMANAGER
# points at another binary).
if [ -z "${ALERTMANAGER:-}" ] && ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq prometheus-alertmanager || true
  fi
fi
# The package test (scripts/test-package.sh) checks the unit with
# systemd-analyze and talks to serve with curl inside a namespace it sets up
# with iproute2: installed when missing.
for need in systemd-analyze:systemd curl:curl ip:iproute2 dpkg-shlibdeps:dpkg-dev; do
  if ! command -v "${need%%:*}" >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need#*:}" || true
  fi
done
cargo test --workspace
# The Debian package: built (one production build of the daemon),
# installed, run without the checkout, removed and purged (root only).
scripts/test-package.sh
