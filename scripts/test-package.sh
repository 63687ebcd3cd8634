#!/usr/bin/env bash
# The Debian package, installed as an operator installs it (issue 32):
# built by scripts/package.sh, installed with dpkg -i; its files, user,
# conffiles and state directory checked; the unit accepted by
# systemd-analyze verify; the unit's own ExecStart run as its user, with
# this checkout (and so its build outputs) out of reach, answering
# /healthz and storing an alert; then dpkg -r keeps the spool and
# dpkg --purge removes it.
#
# Root only (dpkg -i, a system user, a mount namespace): CI runs as root.
# Elsewhere it fails naming what is missing, unless HOST_TEST_WITHOUT
# names `root` (docs/testing.md). It runs serve in a network namespace of
# its own: nothing can reach the internet, whatever the configuration says.
#
#   scripts/test-package.sh            # build the package, then test it
#   SLACK_ALERTD_DEB=FILE scripts/test-package.sh   # test a package built already
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fail() { echo "package test: FAILED: $*" >&2; exit 1; }
say() { echo "package test: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  case ",${HOST_TEST_WITHOUT:-}," in
    *,root,*) say "skipped: not root (HOST_TEST_WITHOUT=root)"; exit 0 ;;
  esac
  fail "needs root (dpkg -i, a system user, a mount namespace): run it as root, as CI does, or set HOST_TEST_WITHOUT=root to skip it"
fi
for tool in dpkg dpkg-deb dpkg-query unshare setpriv curl ip mount getent python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "needs $tool"
done

deb=${SLACK_ALERTD_DEB:-}
if [ -z "$deb" ]; then
  deb=$(scripts/package.sh | tail -n1)
fi
[ -f "$deb" ] || fail "no package at $deb"
case $(basename "$deb") in
  slack-alertd_*_"$(dpkg --print-architecture)".deb) ;;
  *) fail "$deb is not named slack-alertd_<version>_<arch>.deb" ;;
esac

# A machine as if the package had never been there.
dpkg --purge slack-alertd >/dev/null 2>&1 || true
rm -rf /var/lib/slack-alertd /var/cache/slack-alertd /etc/slack-alertd
dpkg -i "$deb" >&2 || fail "dpkg -i $deb"

# Files, user, conffiles, state directory.
unit=/usr/lib/systemd/system/slack-alertd.service
[ -x /usr/bin/slack-alertd ] || fail "/usr/bin/slack-alertd is not installed"
[ -f "$unit" ] || fail "$unit is not installed"
[ -f /etc/slack-alertd/slack.toml ] || fail "/etc/slack-alertd/slack.toml is not installed"
conffiles=$(dpkg-query --showformat='${Conffiles}\n' --show slack-alertd)
for f in /etc/slack-alertd/slack.toml /etc/default/slack-alertd; do
  grep -q " $f " <<<"$conffiles" || fail "$f is not a conffile: $conffiles"
done
user=$(getent passwd slack-alertd) || fail "no user slack-alertd"
uid=$(cut -d: -f3 <<<"$user")
[ "$uid" -lt 1000 ] || fail "slack-alertd is not a system user (uid $uid)"
case $user in *:/usr/sbin/nologin) ;; *) fail "slack-alertd can log in: $user" ;; esac
[ "$(stat -c %U:%G /var/lib/slack-alertd)" = slack-alertd:slack-alertd ] \
  || fail "/var/lib/slack-alertd is $(stat -c %U:%G /var/lib/slack-alertd)"
[ "$(stat -c %G:%a /etc/slack-alertd/slack.toml)" = slack-alertd:640 ] \
  || fail "/etc/slack-alertd/slack.toml is $(stat -c %U:%G:%a /etc/slack-alertd/slack.toml), not root:slack-alertd 640"
ls /etc/systemd/system/*.wants/slack-alertd.service >/dev/null 2>&1 \
  && fail "the unit was enabled at install"
for key in User=slack-alertd StateDirectory=slack-alertd NoNewPrivileges=yes \
           ProtectSystem=strict LimitNOFILE=; do
  grep -q "^$key" "$unit" || fail "the unit has no $key"
done
if command -v systemd-analyze >/dev/null 2>&1; then
  verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
  say "systemd-analyze verify: accepted${verify:+ ($verify)}"
else
  fail "needs systemd-analyze (apt-get install systemd)"
fi

# The unit's ExecStart, its continuation lines joined, its variables from
# the unit's Environment= and the package's /etc/default/slack-alertd.
exec_start=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$unit" | sed 's/^ExecStart=//; s/\\$//' | tr '\n' ' ')
[ -n "$exec_start" ] || fail "no ExecStart in $unit"
listen_default=$(sed -n 's/^Environment=LISTEN=//p' "$unit")
say "ExecStart: $exec_start"

# Run as the unit's user, in a network and mount namespace of its own: only
# loopback, and a tmpfs over this checkout so nothing built here (the
# component under target/) can be read.
hidden=""
case ${CARGO_TARGET_DIR:-} in /*) hidden=$CARGO_TARGET_DIR ;; esac
alert='{"id":"disk-full","message":"db01 disk is full","time":"2026-12-06T10:00:00Z","level":"CRITICAL"}'
inner=$(cat <<EOF
set -eu
ip link set lo up
for dir in "$root" $hidden; do mount -t tmpfs -o size=1m none "\$dir"; done
[ ! -e "$root/target" ] || { echo "the checkout is still in reach"; exit 1; }
LISTEN=$listen_default
ARGS=""
. /etc/default/slack-alertd
# setpriv execs (runuser would stay between, and die of the SIGTERM below).
setpriv --reuid slack-alertd --regid slack-alertd --init-groups --reset-env \\
  sh -c "exec $exec_start" >/tmp/slack-alertd-package-test.log 2>&1 &
serve=\$!
up=""
for _ in \$(seq 1 600); do
  if curl -fsS "http://\$LISTEN/healthz" >/dev/null 2>&1; then up=yes; break; fi
  kill -0 \$serve 2>/dev/null || break
  sleep 0.1
done
[ -n "\$up" ] || { echo "serve did not answer /healthz:"; cat /tmp/slack-alertd-package-test.log; exit 1; }
echo "healthz: \$(curl -sS -o /dev/null -w '%{http_code}' "http://\$LISTEN/healthz")"
answer=\$(curl -sS -w ' %{http_code}' -H 'Content-Type: application/json' --data '$alert' "http://\$LISTEN/?channel=%23ops")
echo "POST /: \$answer"
case "\$answer" in *' 202') ;; *) echo "the alert was not accepted"; cat /tmp/slack-alertd-package-test.log; exit 1 ;; esac
id=\$(echo "\$answer" | sed -n 's/^{"id":\([0-9]*\)}.*/\1/p')
spool=\$(curl -fsS "http://\$LISTEN/spool")
echo "GET /spool: \$spool"
echo "\$spool" | python3 -c 'import json, sys; s = json.load(sys.stdin); sys.exit(0 if int(sys.argv[1]) in s["pending"]["items"] + [f["id"] for f in s["finished"]["items"]] else 1)' "\$id" \\
  || { echo "GET /spool does not list alert \$id"; exit 1; }
kill -TERM \$serve
wait \$serve || { echo "serve did not stop cleanly:"; cat /tmp/slack-alertd-package-test.log; exit 1; }
EOF
)
out=$(unshare --net --mount --propagation private bash -c "$inner" 2>&1) \
  || fail "running the unit's ExecStart: $out"
say "$out"
grep -q 'healthz: 200' <<<"$out" || fail "/healthz did not answer 200: $out"
grep -rqs 'disk-full' /var/lib/slack-alertd/spool || fail "the alert is not in /var/lib/slack-alertd/spool"
[ "$(stat -c %U /var/lib/slack-alertd/spool)" = slack-alertd ] \
  || fail "the spool is not the service user's"

# Removed: the spool (and the configuration) stay; purged: gone.
dpkg -r slack-alertd >&2 || fail "dpkg -r"
[ ! -e /usr/bin/slack-alertd ] || fail "dpkg -r left /usr/bin/slack-alertd"
grep -rqs 'disk-full' /var/lib/slack-alertd/spool || fail "dpkg -r did not keep the spool"
[ -f /etc/slack-alertd/slack.toml ] || fail "dpkg -r did not keep the configuration"
dpkg --purge slack-alertd >&2 || fail "dpkg --purge"
[ ! -e /var/lib/slack-alertd ] || fail "dpkg --purge left /var/lib/slack-alertd"
[ ! -e /etc/slack-alertd ] || fail "dpkg --purge left /etc/slack-alertd"
say "ok: $(basename "$deb") installs, runs as slack-alertd without the checkout, keeps its spool on remove and drops it on purge"
