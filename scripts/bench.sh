#!/usr/bin/env bash
# The benchmarks behind the performance figures (docs/performance.md): builds the host for
# speed (the bench profile), installs python-slack-sdk from PyPI for the
# comparison, and runs everything against a Slack stand-in on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# aiohttp: slack_sdk's AsyncWebClient, the storm's python contender.
python3 -m pip install --quiet --disable-pip-version-check 'slack_sdk==3.48.0' 'aiohttp==3.14.5'
cargo bench -p host-test --bench handler -- "$@"
# serve's intake beside the serve issue 9 started from (one fsync per alert),
# built once into .tools/ by bench-baseline.sh, and a bare hyper server.
INTAKE_BASELINE="$(scripts/bench-baseline.sh)" cargo bench -p host-test --bench intake -- "$@"
# The storm at Slack's real rate (one message a second per channel): about
# a minute and a half with the default STORM_ALERTS=30.
cargo bench -p host-test --bench storm -- "$@"
# Issue 18's storm at 20, 200 and 1,000 channels, 200 ms away: this serve
# beside the serve the issue started from (ff403fe, built once into .tools/)
# and python slack_sdk's AsyncWebClient: a few minutes.
STORM_BASELINE="$(scripts/bench-baseline.sh ff403fe)" cargo bench -p host-test --bench storm -- --compare
# What a request in flight costs serve (memory, threads), with 0 to 1,000
# held out at once: half a minute.
cargo bench -p host-test --bench inflight -- "$@"
# A million alerts through serve, with its resident memory along the way:
# several minutes (SOAK_ALERTS=N for fewer).
cargo bench -p host-test --bench soak -- "$@"
# serve under 30 s of unsigned requests to its Request URL beside 30 s
# without: a minute.
cargo bench -p host-test --bench flood -- "$@"
