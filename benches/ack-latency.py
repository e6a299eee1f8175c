#!/usr/bin/env python3
"""Push acknowledgement latency at a share of each server's maximum rate, side by side.

  benches/ack-latency.py [--only KIND]... [--share 0.8] [--seconds 60] [--max-seconds 60]
                         [--rate KIND=LINES_PER_SEC]... [--out FILE.json]

For shardlog, Grafana Loki and VictoriaLogs in turn (each pinned to CPU 0, the load generator
to CPU 1, a fresh data dir each): a full-rate pushblast run of --max-seconds finds the
server's maximum (unless --rate gives it), then a fresh server takes --share of it for
--seconds. The maximum is measured over as long as the paced run by default: over the first
seconds a server takes more than it can keep up with (shardlog's heads fill before sealing
refuses pushes), so a 10 s maximum overstated what shardlog sustains, and its 80% was
refused pushes over 60 s. Reported per server: the maximum, the rate held, acknowledgement p50 / p99 / max
(per 1,000-line request, as each answers it), requests refused, and peak RSS (VmHWM) over
the paced run. For shardlog also the WAL's fdatasync and commit (write + fdatasync)
histograms from /metrics, since an acknowledgement waits for its group commit by design.

Uses the servers, load generator and peers of ../shared/tools/peer-bench.py (peers from
build-peers.sh); run from the project's root after `cargo build --release`.
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.environ.get("SHARED_TOOLS", os.path.join(HERE, "..", "..", "shared", "tools"))


def peer_bench():
    spec = importlib.util.spec_from_file_location("peer_bench", os.path.join(TOOLS, "peer-bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pushblast(pb, server, secs, lines, tenant, rate=None):
    cmd = ["taskset", "-c", "1", pb.tool("pushblast"), f"127.0.0.1:{server.http}", str(secs), "4", lines,
           "--path", server.push_path, "--tenant", tenant]
    if rate:
        cmd += ["--rate", str(rate)]
    return json.loads(subprocess.check_output(cmd))


def wal_histogram(port, name):
    """Buckets of the histogram `name` (shardlog_wal_fsync_seconds, shardlog_wal_commit_seconds),
    summed over cores: {le: count}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
    return buckets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append")
    ap.add_argument("--share", type=float, default=0.8)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--max-seconds", type=int, default=60)
    ap.add_argument("--rate", action="append", default=[], help="KIND=LINES_PER_SEC: skip the full-rate run")
    ap.add_argument("--out")
    a = ap.parse_args()
    pb = peer_bench()
    given = {k: float(v) for k, v in (r.split("=", 1) for r in a.rate)}
    work = tempfile.mkdtemp(prefix="acklatency.")
    res = {}
    try:
        lines = os.path.join(work, "lines.log")
        with open(lines, "w") as f:
            for p in pb.CORPUS:
                f.write(open(p, encoding="utf-8", errors="replace").read())
        for kind in a.only or ["shardlog", "victorialogs", "loki"]:
            tenant = "0" if kind == "victorialogs" else "fake"
            r = {}
            if kind in given:
                r["max_lines_per_sec"] = given[kind]
            else:
                d = os.path.join(work, kind + "-max")
                os.makedirs(d)
                s = pb.Server(kind, d)
                full = pushblast(pb, s, a.max_seconds, lines, tenant)
                s.stop()
                r["max_lines_per_sec"] = full["lines_per_sec"]
                r["max_run"] = full
            rate = round(r["max_lines_per_sec"] * a.share)
            d = os.path.join(work, kind + "-paced")
            os.makedirs(d)
            s = pb.Server(kind, d)
            paced = pushblast(pb, s, a.seconds, lines, tenant, rate)
            r.update(rate=rate, paced=paced, rss_peak_mib=round(pb.rss_kb(s.proc.pid) / 1024))
            if kind == "shardlog":
                r["wal_fsync_seconds_buckets"] = wal_histogram(s.http, "shardlog_wal_fsync_seconds")
                r["wal_commit_seconds_buckets"] = wal_histogram(s.http, "shardlog_wal_commit_seconds")
            s.stop()
            res[kind] = r
            print(kind, json.dumps({k: v for k, v in r.items() if k != "max_run"}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.out:
        json.dump(res, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
