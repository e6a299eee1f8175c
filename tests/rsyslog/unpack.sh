#!/usr/bin/env bash
# Unpacks rsyslog with its RELP output (omrelp) and the two libraries it needs beyond the
# base system into DIR (default: target/ci-rsyslog), for tests/relp_rsyslog.rs. The packages
# are unpacked with `dpkg -x`, never installed: installing rsyslog would remove
# syslog-ng-core, whose loggen other tests drive. Needs Debian's apt lists (apt-get update).
set -euo pipefail
dir=${1:-target/ci-rsyslog}
if [[ -x $dir/usr/sbin/rsyslogd && -f $dir/usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so ]]; then
    exit 0
fi
mkdir -p "$dir/debs"
# apt-get download writes into the working directory; _apt may not write there, which
# only costs a warning.
(cd "$dir/debs" && apt-get download rsyslog rsyslog-relp libestr0 libfastjson4 librelp0)
for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir"
done
echo "rsyslog unpacked into $dir"
