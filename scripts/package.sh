#!/usr/bin/env bash
# Builds slack-alertd for production (the component built into it) and the
# Debian package slack-alertd_<version>_<arch>.deb into the target
# directory, then prints the package's path (its last line; the build
# talks on stderr). Plain dpkg-deb, no packaging tool to install
# (docs/dependencies.md says why); the package's files are in
# packaging/debian/.
#
#   scripts/package.sh                 # build, then package
#   SLACK_ALERTD_BIN=PATH scripts/package.sh   # package a binary built already
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
die() { echo "package: $*" >&2; exit 1; }
for tool in dpkg-deb dpkg; do
  command -v "$tool" >/dev/null 2>&1 \
    || die "needs $tool (Debian's dpkg; apt-get install dpkg-dev)"
done

target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
binary=${SLACK_ALERTD_BIN:-}
if [ -z "$binary" ]; then
  scripts/setup.sh >&2
  cargo build --locked --profile production -p slack-alertd >&2
  binary=$target/production/slack-alertd
fi
[ -x "$binary" ] || die "no binary at $binary"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' host-test/daemon/Cargo.toml | head -n1)
[ -n "$version" ] || die "no version in host-test/daemon/Cargo.toml"
arch=$(dpkg --print-architecture)
name=slack-alertd_${version}_${arch}
stage=$target/deb/$name
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"

src=packaging/debian
install -D -m 0755 "$binary" "$stage/usr/bin/slack-alertd"
install -D -m 0644 "$src/slack-alertd.service" "$stage/usr/lib/systemd/system/slack-alertd.service"
install -D -m 0640 "$src/slack.toml" "$stage/etc/slack-alertd/slack.toml"
install -D -m 0644 "$src/default" "$stage/etc/default/slack-alertd"
doc=$stage/usr/share/doc/slack-alertd
install -D -m 0644 README.md "$doc/README.md"
for page in docs/*.md; do
  install -D -m 0644 "$page" "$doc/$page"
done
install -D -m 0644 "$src/copyright" "$doc/copyright"
install -m 0644 "$src/conffiles" "$stage/DEBIAN/conffiles"
install -m 0755 "$src/postinst" "$src/prerm" "$src/postrm" "$stage/DEBIAN/"

# The shared libraries the binary needs, as Debian names them (glibc and
# libgcc's unwinder), read off the binary by dpkg-shlibdeps when dpkg-dev
# is there.
depends="libc6, libgcc-s1"
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
  probe=$(mktemp -d)
  mkdir -p "$probe/debian"
  printf 'Source: slack-alertd\n\nPackage: slack-alertd\nArchitecture: any\n' >"$probe/debian/control"
  if found=$(cd "$probe" && dpkg-shlibdeps -O -e "$stage/usr/bin/slack-alertd" 2>/dev/null); then
    depends=${found#shlibs:Depends=}
  fi
  rm -rf "$probe"
fi
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: slack-alertd
Version: $version
Architecture: $arch
Maintainer: slack-alertd developers <slack-alertd@localhost>
Installed-Size: $size
Depends: $depends, passwd
Section: net
Priority: optional
Description: Slack alert handler daemon, running a WebAssembly component
 slack-alertd serve takes alerts from Kapacitor and Prometheus Alertmanager
 and posts them to Slack through the Slack handler component built into
 it: one message per alert, each channel paced at Slack's rate, a durable
 spool, storms shown in one live message, Acknowledge and Silence buttons.
 .
 The package installs the daemon, a hardened systemd unit
 (slack-alertd.service, not enabled at install), a commented configuration
 in /etc/slack-alertd/ and a system user; the spool is kept in
 /var/lib/slack-alertd.
EOF

deb=$target/$name.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
