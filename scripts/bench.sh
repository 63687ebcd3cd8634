#!/usr/bin/env bash
# The benchmarks behind the performance figures (docs/performance.md): builds the host for
# speed (the bench profile), installs python-slack-sdk from PyPI for the
# comparison, and runs everything against a Slack stand-in on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
python3 -m pip install --quiet --disable-pip-version-check 'slack_sdk==3.48.0'
cargo bench -p host-test --bench handler -- "$@"
# serve's intake beside the serve issue 9 started from (one fsync per alert),
# built once into .tools/ by bench-baseline.sh, and a bare hyper server.
INTAKE_BASELINE="$(scripts/bench-baseline.sh)" cargo bench -p host-test --bench intake -- "$@"
# The storm at Slack's real rate (one message a second per channel): about
# a minute and a half with the default STORM_ALERTS=30.
cargo bench -p host-test --bench storm -- "$@"
# A million alerts through serve, with its resident memory along the way:
# several minutes (SOAK_ALERTS=N for fewer).
cargo bench -p host-test --bench soak -- "$@"
