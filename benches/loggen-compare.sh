#!/usr/bin/env bash
# Sustained syslog TCP throughput of shardlog against syslog-ng relaying to a file, the
# baseline a user would otherwise deploy, on the same machine in the same run.
#
# Both servers run pinned to CPU 0 (shardlog with --cores 1), loggen runs pinned to CPU 1
# with 4 connections of RFC 5424 octet-counted messages made from real corpus lines, for
# DURATION seconds each. shardlog's figure counts only lines that are durable (it checks the
# stored count through /loki/api/v1/index/stats); syslog-ng's counts lines in its file.
#
# usage: benches/loggen-compare.sh [DURATION_SECONDS]   (needs loggen and syslog-ng:
#        apt-get install syslog-ng-core)
set -euo pipefail
duration=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
corpus="$root/testdata/loghub"
work=$(mktemp -d -p "$root/target" loggen-compare.XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
command -v loggen >/dev/null || { echo "loggen missing: apt-get install syslog-ng-core" >&2; exit 2; }
command -v syslog-ng >/dev/null || { echo "syslog-ng missing: apt-get install syslog-ng-core" >&2; exit 2; }

# Real lines with a PRI, which loggen parses (RFC 3164 form) and re-sends as RFC 5424.
for f in Linux_2k.log OpenSSH_2k.log; do sed 's/^/<38>/' "$corpus/$f"; done > "$work/lines.log"

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/shardlog"

run_loggen() { # port -> prints lines/s reported by loggen
  taskset -c 1 loggen --inet --stream --syslog-proto --active-connections 4 \
    --interval "$duration" --rate 10000000 --read-file "$work/lines.log" --loop-reading \
    127.0.0.1 "$1" 2>&1 | tee "$work/loggen-$1.out" >&2
  grep -o 'count=[0-9]*' "$work/loggen-$1.out" | tail -1 | cut -d= -f2
}

# --- shardlog
taskset -c 0 "$bin" serve --cores 1 --data-dir "$work/data" --http-addr 127.0.0.1:39100 \
  --syslog-tcp-addr 127.0.0.1:39514 --syslog-udp-addr "" 2> "$work/shardlog.err" &
server=$!
until curl -sf 127.0.0.1:39100/ready >/dev/null; do sleep 0.2; done
start=$(date +%s.%N)
sent=$(run_loggen 39514)
# Wait until everything sent is stored (and so durable), then time the whole run.
stored=0
for _ in $(seq 1 300); do
  stored=$(curl -sG 127.0.0.1:39100/loki/api/v1/index/stats --data-urlencode 'query={level=~".+"}' \
    --data-urlencode start=0 | sed 's/.*"entries":\([0-9]*\).*/\1/')
  [ "$stored" -ge "$sent" ] && break
  sleep 0.1
done
end=$(date +%s.%N)
echo "shardlog: loggen sent $sent, stored $stored" >&2
kill -TERM "$server"; wait "$server" || true
shardlog_rate=$(echo "$stored / ($end - $start)" | bc -l)

# --- syslog-ng relaying to a file
cat > "$work/syslog-ng.conf" <<CONF
@version: 3.38
options { threaded(yes); flush-lines(1000); log-fifo-size(100000); stats_freq(0); };
source s_net { network(ip(127.0.0.1) port(39515) transport("tcp") flags(syslog-protocol) max-connections(16) log-iw-size(100000)); };
destination d_file { file("$work/syslog-ng.out"); };
log { source(s_net); destination(d_file); };
CONF
taskset -c 0 syslog-ng -F -f "$work/syslog-ng.conf" -R "$work/syslog-ng.persist" \
  -p "$work/syslog-ng.pid" -c "$work/syslog-ng.ctl" 2> "$work/syslog-ng.err" &
ng=$!
for _ in $(seq 1 50); do (echo > /dev/tcp/127.0.0.1/39515) 2>/dev/null && break; sleep 0.1; done
start=$(date +%s.%N)
sent_ng=$(run_loggen 39515)
# syslog-ng keeps a partial flush batch in memory: stop when the file has not grown for 2 s
# and time the run to its last growth.
got=0; end=$(date +%s.%N); still=0
while [ "$still" -lt 20 ]; do
  now=$(wc -l < "$work/syslog-ng.out" 2>/dev/null || echo 0)
  if [ "$now" -gt "$got" ]; then got=$now; end=$(date +%s.%N); still=0; else still=$((still + 1)); fi
  [ "$got" -ge "$sent_ng" ] && break
  sleep 0.1
done
kill -9 "$ng" 2>/dev/null; wait "$ng" 2>/dev/null || true
got=$(wc -l < "$work/syslog-ng.out")
echo "syslog-ng: loggen sent $sent_ng, wrote $got" >&2
ng_rate=$(echo "$got / ($end - $start)" | bc -l)

printf '\n| server | lines sent | lines stored | lines/s |\n|---|---|---|---|\n'
printf '| shardlog (1 core, durable) | %d | %d | %.0f |\n' "$sent" "$stored" "$shardlog_rate"
printf '| syslog-ng -> file (1 core) | %d | %d | %.0f |\n' "$sent_ng" "$got" "$ng_rate"
printf 'ratio shardlog / syslog-ng: %.2f\n' "$(echo "$shardlog_rate / $ng_rate" | bc -l)"
