#!/usr/bin/env bash
# Bytes on disk per stored line, against zstd -3 of the same lines, on the real corpus.
#
# The ten loghub files (2,000 lines each) are pushed through the Loki push API (JSON), each
# file as its own stream {app="<file>"}, into a fresh `shardlog serve --cores 1`. SIGTERM
# seals every head into parts; the figure is `du -b` of <data>/shards (parts and manifest)
# divided by the lines pushed. Baselines: all files concatenated through `zstd -3`, and each
# file through `zstd -3` separately, summed. Then (COMPACT=1, the default) the server is
# started again until compaction has rewritten the cold partitions at the compaction level.
#
# Timestamps: with TS=line (default) they are parsed from each line (formats without a year
# get 2020; a line without a readable time gets the previous one + 1 us); with TS=seq every
# line gets base + i ms. Real timestamps spread some files over many days, and parts are cut
# per (tenant, day), so TS=line writes more, smaller parts.
#
# usage: benches/storage-figures.sh [line|seq]
#   env: BIN=path/to/shardlog, PORT=39200, SERVE_ARGS="--partition 168h" (more serve flags)
set -euo pipefail
ts_mode=${1:-line}
root=$(cd "$(dirname "$0")/.." && pwd)
corpus="$root/testdata/loghub"
bin=${BIN:-$root/target/release/shardlog}
port=${PORT:-39200}
[ -x "$bin" ] || cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mkdir -p "$root/target"
work=$(mktemp -d -p "$root/target" storage-figures.XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" serve --data-dir "$work/data" --http-addr "127.0.0.1:$port" --syslog-tcp-addr '' \
  --syslog-udp-addr '' --cores 1 ${SERVE_ARGS:-} 2> "$work/server.err" &
server=$!
until curl -sf "127.0.0.1:$port/ready" >/dev/null; do sleep 0.05; done

lines=0
for f in "$corpus"/*.log; do
  app=$(basename "$f" .log)
  python3 - "$f" "$app" "$ts_mode" > "$work/body.json" <<'EOF'
import json, re, sys, datetime as dt
path, app, mode = sys.argv[1:4]
UTC = dt.timezone.utc
# Whole seconds and microseconds apart: a float of the seconds since 1970 has no room for
# the nanoseconds and would stamp lines with rounding noise that their text does not hold.
def ns(d):
    d = d.replace(tzinfo=UTC)
    return (int(d.replace(microsecond=0).timestamp()) * 1_000_000 + d.microsecond) * 1000
def parse(app, l):
    p = dt.datetime.strptime
    if app.startswith("Android"):   return ns(p("2020-" + l[:18], "%Y-%m-%d %H:%M:%S.%f"))
    if app.startswith("Apache"):    return ns(p(l[1:25], "%a %b %d %H:%M:%S %Y"))
    if app.startswith("HDFS"):      return ns(p(l[:13], "%y%m%d %H%M%S"))
    if app.startswith("HPC"):       return int(l.split()[4]) * 1_000_000_000
    if app.startswith(("Hadoop", "Zookeeper")): return ns(p(l[:23], "%Y-%m-%d %H:%M:%S,%f"))
    if app.startswith(("Linux", "OpenSSH")):    return ns(p("2020 " + l[:15], "%Y %b %d %H:%M:%S"))
    if app.startswith("OpenStack"): return ns(p(l.split()[1] + " " + l.split()[2], "%Y-%m-%d %H:%M:%S.%f"))
    if app.startswith("Spark"):     return ns(p(l[:17], "%y/%m/%d %H:%M:%S"))
    raise ValueError(app)
base = 1_700_000_000_000_000_000
values, prev, parsed = [], base, 0
for i, l in enumerate(open(path, encoding="utf-8", errors="replace").read().splitlines()):
    if mode == "seq":
        t = base + i * 1_000_000
    else:
        try:
            t = parse(app, l); parsed += 1
        except Exception:
            t = prev + 1000
    prev = t
    values.append([str(t), l])
print(json.dumps({"streams": [{"stream": {"app": app}, "values": values}]}))
print(f"{app}: {len(values)} lines, {parsed if mode == 'line' else 0} timestamps parsed", file=sys.stderr)
EOF
  code=$(curl -s -o "$work/push.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$work/body.json" "127.0.0.1:$port/loki/api/v1/push")
  [ "$code" = 204 ] || { echo "push of $app: HTTP $code $(cat "$work/push.out")" >&2; exit 1; }
  lines=$((lines + $(jq '.streams[0].values | length' "$work/body.json")))
done

kill -TERM "$server"
wait "$server" || true

# Old partitions are cold: compaction rewrites their sealed parts (zstd 3) at the compaction
# level (zstd 9) in the background. Restart and wait until it has nothing left to do (the
# count of compactions stops moving for longer than a maintenance interval).
if [ "${COMPACT:-1}" = 1 ]; then
  "$bin" serve --data-dir "$work/data" --http-addr "127.0.0.1:$port" --syslog-tcp-addr '' \
    --syslog-udp-addr '' --cores 1 ${SERVE_ARGS:-} 2>> "$work/server.err" &
  server=$!
  until curl -sf "127.0.0.1:$port/ready" >/dev/null; do sleep 0.05; done
  last=-1; still=0
  while [ "$still" -lt 3 ]; do
    sleep 5
    now=$(curl -s "127.0.0.1:$port/metrics" | awk '/^shardlog_compactions_total/ { s += $2 } END { print s + 0 }')
    if [ "$now" = "$last" ]; then still=$((still + 1)); else still=0; fi
    last=$now
  done
  echo "compactions: $last" >&2
  kill -TERM "$server"
  wait "$server" || true
fi

parts=$(find "$work/data/shards" -name '*.part' | wc -l)
stored=$(du -sb "$work/data/shards" | cut -f1)
files=$(find "$work/data/shards" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
days=$(find "$work/data/shards" -mindepth 3 -maxdepth 3 -type d -path '*/parts/*' | wc -l)
cat_zstd=$(cat "$corpus"/*.log | zstd -3 -c | wc -c)
each_zstd=0
for f in "$corpus"/*.log; do each_zstd=$((each_zstd + $(zstd -3 -c "$f" | wc -c))); done
raw=$(cat "$corpus"/*.log | wc -c)

echo "timestamps: $ts_mode   lines: $lines   part files: $parts   day folders: $days   raw bytes: $raw"
awk -v l="$lines" -v s="$stored" -v f="$files" -v c="$cat_zstd" -v e="$each_zstd" -v r="$raw" 'BEGIN {
  printf "%-34s %10s %12s %10s\n", "", "bytes", "bytes/line", "vs shards"
  printf "%-34s %10d %12.1f %10s\n", "raw lines", r, r / l, "-"
  printf "%-34s %10d %12.1f %10s\n", "shardlog du -sb shards/", s, s / l, "1.00"
  printf "%-34s %10d %12.1f %10s\n", "  of which files (parts+manifest)", f, f / l, "-"
  printf "%-34s %10d %12.1f %10.2f\n", "zstd -3 of all files concatenated", c, c / l, s / c
  printf "%-34s %10d %12.1f %10.2f\n", "zstd -3 of each file, summed", e, e / l, s / e
}'
