#!/usr/bin/env python3
"""Trace lookup side by side: N lines in the problem statement's shape (1,000 services,
random 16-hex trace ids, 10 lines per trace, one day of timestamps) loaded into shardlog,
Loki and VictoriaLogs (each pinned to CPU 0, one core; the loader on CPU 1), then 100 random
traces looked up by id over the whole range; median, p99 and maximum latency, lines
returned, and for shardlog the query stats (blocks and parts skipped, index bytes read).

  benches/trace-lookup.py [--lines 100000000] [--only shardlog] [--shardlog-args "..."]
                          [--baseline BIN] [--out FILE.json]

`--baseline BIN` loads the same lines into another shardlog build (one without the
metadata index) to measure what indexing costs in ingest rate and bytes per line. Peers come
from ../shared/tools/build-peers.sh; the loader is `cargo run --release --example
trace_load`.
"""
import argparse, json, os, shlex, shutil, signal, subprocess, sys, tempfile, time, urllib.request
import importlib.util

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOLS = os.path.join(ROOT, "..", "shared", "tools")
spec = importlib.util.spec_from_file_location("pb", os.path.join(TOOLS, "peer-bench.py"))
pb = importlib.util.module_from_spec(spec); spec.loader.exec_module(pb)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
LOADER = os.path.join(TARGET, "release", "examples", "trace_load")
CORPUS = os.path.join(ROOT, "..", "shared", "corpus", "loghub")


class Shardlog:
    """A shardlog server on CPU 0 with its own data directory."""
    kind = "shardlog"

    def __init__(self, binary, work, args):
        self.data = os.path.join(work, "shardlog-data"); os.makedirs(self.data, exist_ok=True)
        self.http = pb.free_port()
        log = open(os.path.join(work, "shardlog.log"), "w")
        cmd = [binary, "serve", "--data-dir", self.data, "--http-addr", f"127.0.0.1:{self.http}",
               "--syslog-tcp-addr", "", "--syslog-udp-addr", "", "--cores", "1"] + args
        self.proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=log, stderr=log)
        pb.wait_http(f"http://127.0.0.1:{self.http}/ready", 90)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try: self.proc.wait(120)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()

    def flush(self):
        pass


def loader(cmd, target, port, lines, extra=()):
    out = subprocess.check_output(["taskset", "-c", "1", LOADER, cmd, target, f"127.0.0.1:{port}",
                                   "--lines", str(lines), "--corpus", CORPUS] + list(extra))
    return json.loads(out)


def settle(s, kind):
    """Waits until the server is idle (its CPU time stops growing): seals and merges done."""
    last, still = None, 0
    for _ in range(600):
        with open(f"/proc/{s.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = int(fields[11]) + int(fields[12])
        still = still + 1 if last is not None and cpu - last < 5 else 0
        if still >= 5: return
        last = cpu; time.sleep(1)


def run(kind, work, a, binary=None):
    if kind == "shardlog":
        s = Shardlog(binary or os.path.join(TARGET, "release", "shardlog"), work, shlex.split(a.shardlog_args))
    else:
        s = pb.Server(kind, work)
    try:
        start_ns = time.time_ns() - 86_400_000_000_000 - 3_600_000_000_000
        target = "shardlog" if kind == "shardlog" else kind
        load = loader("load", target, s.http, a.lines, ["--start-ns", str(start_ns)])
        rss_load = pb.rss_kb(s.proc.pid)
        s.flush()
        settle(s, kind)
        r = {"load": load, "peak_rss_mib_after_load": round(rss_load / 1024, 1)}
        # Loki answers a trace lookup in seconds: fewer of them keep the run short.
        n = a.loki_lookups if kind == "loki" else a.lookups
        r["lookup"] = loader("lookup", target, s.http, a.lines,
                             ["--start-ns", str(start_ns), "--lookups", str(n)])
        # Again, now that the index directories and the page cache are warm.
        r["lookup_again"] = loader("lookup", target, s.http, a.lines,
                                   ["--start-ns", str(start_ns), "--lookups", str(n)])
        if kind == "shardlog" and "--multi-tenant-queries" in a.shardlog_args:
            # The same lookups as a user who may read three tenants (two of them empty).
            r["lookup_three_tenants"] = loader("lookup", target, s.http, a.lines,
                                               ["--start-ns", str(start_ns), "--lookups", str(a.lookups),
                                                "--org", "fake|team-b|team-c"])
        r["disk_bytes"] = pb.du(s.data)
        r["bytes_per_line"] = round(r["disk_bytes"] / a.lines, 2)
        r["peak_rss_mib"] = round(pb.rss_kb(s.proc.pid) / 1024, 1)
        return r
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=100_000_000)
    ap.add_argument("--lookups", type=int, default=100)
    ap.add_argument("--loki-lookups", type=int, default=20)
    ap.add_argument("--only", action="append")
    ap.add_argument("--shardlog-args", default="")
    ap.add_argument("--baseline")
    ap.add_argument("--out")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    a = ap.parse_args()
    res = {"lines": a.lines}
    for kind in a.only or ["shardlog", "victorialogs", "loki"]:
        work = tempfile.mkdtemp(prefix=f"tracelookup-{kind}.")
        try:
            res[kind] = run(kind, work, a)
        finally:
            if not a.keep: shutil.rmtree(work, ignore_errors=True)
        print(json.dumps({kind: res[kind]}), flush=True)
    if a.baseline:
        work = tempfile.mkdtemp(prefix="tracelookup-baseline.")
        try:
            res["shardlog_baseline"] = run("shardlog", work, a, a.baseline)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps({"shardlog_baseline": res["shardlog_baseline"]}), flush=True)
    if a.out:
        with open(a.out, "w") as f: json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
