#!/usr/bin/env python3
"""Metric query latency side by side: shardlog, Grafana Loki and VictoriaLogs on the same data.

The five metric queries of issue 9's "Figures" section, asked of each server in turn over the
same entries (the loghub lines in raw, JSON and logfmt renderings, built by
tests/differential/loki_diff.py's generator, cycled to --lines entries over --hours ending five
minutes ago), each --repeat times; prints and writes the median and the max wall time per
query, with the answer's status and series count so that a fast refusal is not read as a fast
answer. Loki and shardlog get LogQL over /loki/api/v1/query_range; VictoriaLogs gets the LogsQL
equivalent (`stats by (...) count()`, `rate()`, `sum_len(_msg)`, `quantile(...)`) over
/select/logsql/stats_query_range with the same start, end and step.

  PEERS=~/.cache/peers benches/peer_metric_query.py [--lines 300000] [--hours 2] [--repeat 5]
      [--only shardlog|loki|victorialogs]... [--shardlog-bin PATH] [--cores 1] [--pin CPU]
      [--out FILE.json]

For shardlog, each query's line also gives the figures of issue 9: lines and line bytes
scanned per second per core (the lines its selector reads, over the median, divided by
--cores), the part blocks it considered, skipped (bloom) and decoded per run (from /metrics),
and the load average when it ran (the machine may be shared). --ingest-seconds N then
measures push ingest (`shardlog bench push` on a tenant of its own, --ingest-rounds times
each way, alternating) alone and while the five queries run in a loop, and prints the
medians and their ratio. The issue's figures on 10 M lines and 2 cores:

  benches/peer_metric_query.py --only shardlog --lines 10000000 --cores 2 --pin '' \
      --repeat 5 --ingest-seconds 15 --ingest-rounds 3

Each server runs alone, pinned with taskset to --pin (default CPU 0; --pin '' for no pinning),
shardlog with --cores (default 1: the same single core as the peers); the client runs on the
other CPUs. Peers come from build-peers.sh (${PEERS:-~/.cache/peers}/bin). Not a test: never run
by `make test`.

The queries are alike, not identical: VictoriaLogs counts in step buckets [t, t+step) where
LogQL looks back over a range window (t-range, t]; windows equal the steps here, so both read
every line once per query. VictoriaLogs' topk is `first 5 by (bytes desc) partition by (_time)`.
VictoriaLogs' Loki push endpoint parses JSON lines into fields as it stores them (the line
itself is not kept as `_msg`), so its JSON queries filter on stored fields where LogQL parses
each line at query time: that work moved to ingest. The truncated JSON lines of the data make
LogQL's `| json` fail on them: the LogQL queries drop those with `__error__=""`, as a user must.
VictoriaLogs' `math` parses "3m2s" and "12ms" but not "250us" (NaN, dropped by `d:>=0`), so its
p99 leaves out the microsecond durations that LogQL's `duration()` counts.
"""
import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NS = 1_000_000_000

sys.dont_write_bytecode = True  # no __pycache__ in tests/differential
_spec = importlib.util.spec_from_file_location("loki_diff", os.path.join(REPO, "tests", "differential", "loki_diff.py"))
ld = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ld)

# (name, LogQL for shardlog and Loki, LogsQL for VictoriaLogs, step in seconds, the `format` its
# selector reads or None for all: lines scanned per second counts those lines)
QUERIES = [
    ("count by app [1m]",
     'sum by (app) (count_over_time({app=~".+"}[1m]))',
     '{app=~".+"} | stats by (app) count() c', 60, None),
    ("logfmt level=~err rate [5m]",
     'sum by (level) (rate({app=~".+"} | logfmt | level=~"err.*" [5m]))',
     '{app=~".+"} | unpack_logfmt | filter level:~"^err" | stats by (level) rate() r', 300, None),
    ("topk 5 bytes by app [1h]",
     'topk(5, sum by (app) (bytes_over_time({app=~".+"}[1h])))',
     '{app=~".+"} | stats by (app) sum_len(_msg) b | first 5 by (b desc) partition by (_time)', 3600, None),
    ("json status>=500 count [5m]",
     'sum by (app) (count_over_time({format="json"} | json | __error__="" | status >= 500 [5m]))',
     '{format="json"} status:>=500 | stats by (app) count() c', 300, "json"),
    ("quantile 0.99 unwrap duration [5m]",
     'quantile_over_time(0.99, {format="json"} | json | __error__="" | unwrap duration(duration) [5m]) by (app)',
     '{format="json"} duration:* | math duration / 1000000000 as d | filter d:>=0 | stats by (app) quantile(0.99, d) p99', 300, "json"),
]


def cycled_entries(loghub, lines, hours):
    """`lines` entries: loki_diff's data (3 renderings per corpus line), the corpus cycled."""
    per_system = 2000
    end_ns = (time.time_ns() - 5 * 60 * NS) // NS * NS
    base, _ = ld.build_entries(loghub, ld.SYSTEMS, per_system, end_ns, hours * 3600 * NS)
    if lines <= len(base):
        step = len(base) / lines
        picked = [base[int(k * step)] for k in range(lines)]
    else:
        picked = [base[k % len(base)] for k in range(lines)]
    # fresh timestamps, evenly spread and distinct, in the order of the picked entries
    start = end_ns - hours * 3600 * NS
    spacing = hours * 3600 * NS // lines
    return [(start + k * spacing, labels, line, md) for k, (_, labels, line, md) in enumerate(picked)]


def start_server(kind, work, a):
    """(server, push path) for one of the three, started on a fresh data dir and ready."""
    data = os.path.join(work, kind)
    os.makedirs(data)
    port = ld.free_port()
    env = dict(os.environ)
    env.setdefault("TZ", "UTC")
    peers = os.environ.get("PEERS", os.path.expanduser("~/.cache/peers"))
    if kind == "shardlog":
        cmd = [a.shardlog_bin, "serve", "--data-dir", data, "--http-addr", f"127.0.0.1:{port}",
               "--syslog-tcp-addr", "", "--syslog-udp-addr", "", "--cores", str(a.cores)]
        push_path, ready = "/loki/api/v1/push", "/ready"
    elif kind == "loki":
        env.update(LOKI_DATA=data, LOKI_HTTP_PORT=str(port), LOKI_GRPC_PORT=str(ld.free_port()))
        cmd = [os.path.join(peers, "bin", "loki"), f"-config.file={os.path.abspath(a.loki_config)}",
               "-config.expand-env=true"]
        push_path, ready = "/loki/api/v1/push", "/ready"
    else:
        cmd = [os.path.join(peers, "bin", "victoria-logs"), f"-storageDataPath={data}",
               f"-httpListenAddr=127.0.0.1:{port}", "-retentionPeriod=100y"]
        push_path, ready = "/insert/loki/api/v1/push", "/health"
    if a.pin:
        cmd = ["taskset", "-c", a.pin] + cmd
    # Loki writes chunks under its working directory: run each in its data dir
    s = ld.Server(kind, cmd, env, data, port, ready, os.path.join(work, kind + ".log"))
    try:
        s.wait_ready(180)
    except RuntimeError:
        s.stop()
        raise
    return s, push_path


def push(s, push_path, entries):
    for body in ld.push_bodies(entries, batch=5000):
        st, _, text = ld.http(s.base, push_path, headers={"Content-Type": "application/json"}, body=body)
        if st not in (200, 204):
            raise RuntimeError(f"push to {s.name}: {st} {text[:300]!r}")
    if s.name == "victorialogs":
        ld.http(s.base, "/internal/force_flush")


def ask(s, logql, logsql, start_s, end_s, step):
    if s.name == "victorialogs":
        path, params = "/select/logsql/stats_query_range", {"query": logsql, "start": str(start_s), "end": str(end_s), "step": f"{step}s"}
    else:
        path, params = "/loki/api/v1/query_range", {"query": logql, "start": str(start_s), "end": str(end_s), "step": str(step)}
    t = time.perf_counter()
    st, _, body = ld.http(s.base, path, params, timeout=600)
    secs = time.perf_counter() - t
    series, sample = None, None
    if st == 200:
        try:
            result = json.loads(body)["data"]["result"]
            series = len(result)
            # one value to eyeball: the last point of the first series in label order
            first = min(result, key=lambda r: sorted(r["metric"].items()))
            sample = (first["metric"], first["values"][-1][1])
        except (ValueError, KeyError, TypeError, IndexError):
            pass
    return secs, st, series, sample, body


BLOCK_COUNTERS = ("shardlog_query_blocks_considered_total", "shardlog_query_blocks_skipped_by_bloom_total",
                  "shardlog_query_blocks_scanned_total", "shardlog_query_line_bytes_scanned_total")


def counters(s):
    """shardlog's query block counters from /metrics, summed over shards (0 when absent)."""
    st, _, body = ld.http(s.base, "/metrics")
    out = dict.fromkeys(BLOCK_COUNTERS, 0.0)
    if st != 200:
        return out
    for line in body.decode("utf-8", "replace").splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in out:
            try:
                out[name] += float(line.rsplit(" ", 1)[1])
            except (ValueError, IndexError):
                pass
    return out


def settle(pid, quiet=0.05, longest=180):
    """Waits until the server's process uses less than `quiet` of a CPU over a second (its
    sealing, compaction or flushing of what was just loaded is done), `longest` s at most: a
    query timed while the server still digests the load measures both."""
    def cpu_seconds():
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    deadline = time.time() + longest
    while time.time() < deadline:
        c0 = cpu_seconds()
        time.sleep(1)
        if cpu_seconds() - c0 < quiet:
            return
    print(f"server {pid} still busy after {longest} s; querying anyway", flush=True)


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def push_bench(a, s, seconds):
    """Lines per second of one `shardlog bench push` run against server `s`."""
    out = tempfile.mkdtemp(prefix="ingest.")
    try:
        pin = ["taskset", "-c", a.bench_pin] if a.bench_pin else []
        cmd = pin + [a.shardlog_bin, "bench", "push", "--http-addr", s.base.split("://", 1)[1],
               "--tenant", "ingest-bench", "--duration", f"{seconds}s", "--out", out]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds * 10 + 120)
        with open(os.path.join(out, "report.json")) as fh:
            return json.load(fh)["lines_per_sec"]
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
        print(f"ingest bench failed: {e}", file=sys.stderr)
        return float("nan")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def ingest_figures(a, s, start_s, end_s):
    """Push ingest alone and under a loop of the five queries, --ingest-rounds times each."""
    alone, loaded, asked = [], [], []
    for _ in range(a.ingest_rounds):
        alone.append(push_bench(a, s, a.ingest_seconds))
        stop = threading.Event()

        def query_loop():
            while not stop.is_set():
                for _, logql, logsql, step, _ in QUERIES:
                    if stop.is_set():
                        break
                    ask(s, logql, logsql, start_s, end_s, step)
                    asked.append(1)

        t = threading.Thread(target=query_loop, daemon=True)
        t.start()
        time.sleep(0.5)
        load = load_average()
        loaded.append(push_bench(a, s, a.ingest_seconds))
        stop.set()
        t.join(600)
        print(f"ingest round: alone {alone[-1]:,.0f} lines/s, under queries {loaded[-1]:,.0f} lines/s"
              f" (load {load:.1f})", flush=True)
    a_med, l_med = statistics.median(alone), statistics.median(loaded)
    print(f"ingest medians: alone {a_med:,.0f} lines/s, while queries run {l_med:,.0f} lines/s"
          f" = {l_med / a_med:.0%} ({len(asked)} queries answered meanwhile)", flush=True)
    return {"alone_lines_per_sec": alone, "under_queries_lines_per_sec": loaded,
            "ratio_of_medians": l_med / a_med, "queries_answered": len(asked)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--hours", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", action="append", choices=["shardlog", "loki", "victorialogs"])
    ap.add_argument("--shardlog-bin", default=os.path.join(REPO, "target", "release", "shardlog"))
    ap.add_argument("--loki-config", default=os.environ.get("LOKI_CONFIG") or os.path.join(
        os.path.dirname(REPO), "shared", "tools", "peer-configs", "loki.yaml"))
    ap.add_argument("--loghub", default=os.path.join(REPO, "testdata", "loghub"))
    ap.add_argument("--cores", type=int, default=1, help="shardlog --cores")
    ap.add_argument("--pin", default="0", help="taskset CPU list for the server ('' = no pinning)")
    ap.add_argument("--ingest-seconds", type=int, default=0,
                    help="shardlog: measure push ingest alone and under queries, runs this long")
    ap.add_argument("--ingest-rounds", type=int, default=3)
    ap.add_argument("--hold-seconds", type=int, default=0,
                    help="keep each server and its data up this long after its queries (to query"
                         " or profile it by hand)")
    ap.add_argument("--perf-dir", default="",
                    help="shardlog: `perf record -g` the server while each query repeats, into"
                         " DIR/q<N>.data (N: the query's place in the list)")
    ap.add_argument("--bench-pin", default="",
                    help="taskset CPU list for the push load generator ('' = no pinning); with"
                         " --pin 0 --cores 1 --bench-pin 1 the server's core is shared only by"
                         " its own ingest and queries")
    ap.add_argument("--out")
    a = ap.parse_args()
    a.shardlog_bin = os.path.abspath(a.shardlog_bin)  # the servers run in their data dirs

    entries = cycled_entries(a.loghub, a.lines, a.hours)
    line_bytes = sum(len(e[2].encode()) for e in entries)
    start_s, end_s = entries[0][0] // NS - 60, entries[-1][0] // NS + 60
    print(f"{len(entries)} entries, {line_bytes / 1e6:.1f} MB of lines, {a.hours} h", flush=True)
    work = tempfile.mkdtemp(prefix="peer_metric_query.")
    res = {"entries": len(entries), "line_bytes": line_bytes, "repeat": a.repeat, "servers": {}}
    try:
        for kind in a.only or ["shardlog", "loki", "victorialogs"]:
            s, push_path = start_server(kind, work, a)
            try:
                t = time.perf_counter()
                push(s, push_path, entries)
                load_s = time.perf_counter() - t
                settle(s.proc.pid)
                r = {"load_seconds": round(load_s, 1), "queries": {}}
                for name, logql, logsql, step, fmt in QUERIES:
                    scanned = sum(1 for e in entries if fmt is None or e[1]["format"] == fmt)
                    scanned_bytes = sum(len(e[2].encode()) for e in entries if fmt is None or e[1]["format"] == fmt)
                    times, st, series, sample, body = [], None, None, None, b""
                    before = counters(s) if kind == "shardlog" else None
                    loads = []
                    perf = None
                    if a.perf_dir and kind == "shardlog":
                        os.makedirs(a.perf_dir, exist_ok=True)
                        data = os.path.join(a.perf_dir, f"q{QUERIES.index((name, logql, logsql, step, fmt))}.data")
                        perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(s.proc.pid),
                                                 "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        time.sleep(1)
                    for _ in range(a.repeat):
                        loads.append(load_average())
                        secs, st, series, sample, body = ask(s, logql, logsql, start_s, end_s, step)
                        times.append(secs)
                    if perf is not None:
                        perf.send_signal(2)
                        perf.wait(120)
                    q = {"status": st, "series": series, "sample": sample, "median_ms": round(statistics.median(times) * 1e3, 2),
                         "max_ms": round(max(times) * 1e3, 2),
                         "lines_scanned": scanned,
                         "lines_per_sec": round(scanned / statistics.median(times)) if st == 200 else None}
                    if st != 200:
                        q["error"] = body[:200].decode("utf-8", "replace").strip()
                    cores = a.cores if kind == "shardlog" else 1
                    median = statistics.median(times)
                    q["lines_per_sec_per_core"] = round(scanned / median / cores) if st == 200 else None
                    q["line_bytes_per_sec_per_core"] = round(scanned_bytes / median / cores) if st == 200 else None
                    q["load_average"] = round(statistics.median(loads), 2)
                    if before is not None:
                        after = counters(s)
                        per_run = {k: (after[k] - before[k]) / a.repeat for k in BLOCK_COUNTERS}
                        considered = per_run[BLOCK_COUNTERS[0]]
                        q["blocks"] = {"considered": considered, "skipped_by_bloom": per_run[BLOCK_COUNTERS[1]],
                                       "decoded": per_run[BLOCK_COUNTERS[2]],
                                       "part_line_bytes": per_run[BLOCK_COUNTERS[3]],
                                       "skipped_share": per_run[BLOCK_COUNTERS[1]] / considered if considered else 0.0}
                    r["queries"][name] = q
                    print(f"{kind:13} {name:36} {st} series={series!s:5} median {q['median_ms']:9.2f} ms  max {q['max_ms']:9.2f} ms"
                          + (f"  {q['lines_per_sec'] / 1e6:.2f} M lines/s" if q["lines_per_sec"] else "")
                          + (f"  e.g. {sample[0]} {sample[1]}" if sample else "")
                          + (f"  ({q['error'][:80]})" if st != 200 else ""), flush=True)
                    if st == 200:
                        b = q.get("blocks")
                        print(f"{'':13} {'':36} per core: {q['lines_per_sec_per_core'] / 1e6:.2f} M lines/s,"
                              f" {q['line_bytes_per_sec_per_core'] / 1e6:.0f} MB/s of lines"
                              + (f"; blocks per run: {b['considered']:.0f} considered, {b['skipped_by_bloom']:.0f}"
                                 f" skipped ({b['skipped_share']:.0%}), {b['decoded']:.0f} decoded" if b else "")
                              + f"; load {q['load_average']}", flush=True)
                if a.hold_seconds > 0:
                    print(f"{kind} holds its data at {s.base} (pid {s.proc.pid}) for {a.hold_seconds} s",
                          flush=True)
                    time.sleep(a.hold_seconds)
                if kind == "shardlog" and a.ingest_seconds > 0:
                    r["ingest"] = ingest_figures(a, s, start_s, end_s)
                res["servers"][kind] = r
            finally:
                s.stop()
    except RuntimeError as e:
        print(f"peer_metric_query: {e}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
