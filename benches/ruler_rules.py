#!/usr/bin/env python3
"""How many rules one core evaluates per second, and what that costs ingest.

Loads --lines entries (the loghub lines in raw, JSON and logfmt renderings, as
benches/peer_metric_query.py builds them, spread over --hours ending five minutes ago) into a
shardlog with --cores cores, then writes --rules alerting rules over --window windows
(`sum by (app) (count_over_time({app="<system>"} |= "<word>" [5m] offset 5m)) > 0`, eight
systems times ten words; the offset because the loaded lines end five minutes before the
load, so that every window holds lines) in groups of ten, each group evaluated every
--interval: when that asks more than a core can evaluate, the ruler runs flat out and
`shardlog_ruler_rule_evaluations_total` over --seconds gives the rate. Then push ingest (`shardlog bench push`, --ingest-seconds, on a
tenant of its own) is measured with the rules running and with none, --ingest-rounds times
each way, alternating, and the medians are compared.

  benches/ruler_rules.py [--lines 10000000] [--rules 100] [--cores 1] [--pin 0]
      [--seconds 30] [--ingest-seconds 15] [--ingest-rounds 3] [--shardlog-bin PATH]

Not a test: never run by `make test`.
"""
import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
_spec = importlib.util.spec_from_file_location("pmq", os.path.join(HERE, "peer_metric_query.py"))
pmq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pmq)
ld = pmq.ld

WORDS = ["error", "failed", "user", "session", "connection", "time", "node", "info", "block", "request"]


def metric(s, name):
    st, _, body = ld.http(s.base, "/metrics")
    total = 0.0
    for line in body.decode("utf-8", "replace").splitlines():
        if line.split("{", 1)[0].split(" ", 1)[0] == name:
            total += float(line.rsplit(" ", 1)[1])
    return total


def write_rules(rules_dir, count, window, offset, interval):
    """`count` rules in groups of ten, in one namespace file of tenant `fake`."""
    os.makedirs(os.path.join(rules_dir, "fake"), exist_ok=True)
    lines = ["groups:"]
    for k in range(count):
        if k % 10 == 0:
            lines += [f"  - name: g{k // 10}", f"    interval: {interval}", "    rules:"]
        system = ld.SYSTEMS[k % len(ld.SYSTEMS)].lower()
        word = WORDS[(k // len(ld.SYSTEMS)) % len(WORDS)]
        lines += [f"      - alert: Rule{k}",
                  f"        expr: 'sum by (app) (count_over_time({{app=\"{system}\"}} |= \"{word}\" [{window}]{offset})) > 0'"]
    path = os.path.join(rules_dir, "fake", "bench.yaml")
    with open(path + ".tmp", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.rename(path + ".tmp", path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--hours", type=int, default=2)
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--window", default="5m")
    # The lines end five minutes before the load: the windows look back past that gap.
    ap.add_argument("--offset", default="5m")
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--pin", default="0")
    ap.add_argument("--bench-pin", default="")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--ingest-seconds", type=int, default=15)
    ap.add_argument("--ingest-rounds", type=int, default=3)
    ap.add_argument("--shardlog-bin", default=os.path.join(pmq.REPO, "target", "release", "shardlog"))
    a = ap.parse_args()
    loghub = os.path.join(pmq.REPO, "..", "shared", "corpus", "loghub")
    work = tempfile.mkdtemp(prefix="ruler-bench.")
    rules_dir = os.path.join(work, "rules")
    os.makedirs(rules_dir)
    data = os.path.join(work, "data")
    port = ld.free_port()
    cmd = [a.shardlog_bin, "serve", "--data-dir", data, "--http-addr", f"127.0.0.1:{port}",
           "--syslog-tcp-addr", "", "--syslog-udp-addr", "", "--cores", str(a.cores),
           "--rules-dir", rules_dir]
    if a.pin:
        cmd = ["taskset", "-c", a.pin] + cmd
    s = ld.Server("shardlog", cmd, dict(os.environ), work, port, "/ready", os.path.join(work, "shardlog.log"))
    try:
        s.wait_ready(180)
        entries = pmq.cycled_entries(loghub, a.lines, a.hours)
        t = time.time()
        pmq.push(s, "/loki/api/v1/push", entries)
        del entries
        print(f"loaded {a.lines:,} lines in {time.time() - t:.0f} s", flush=True)
        pmq.settle(s.proc.pid)
        offset = f" offset {a.offset}" if a.offset else ""
        path = write_rules(rules_dir, a.rules, a.window, offset, a.interval)
        time.sleep(3)  # loaded within a second, then every group is due at once
        e0, g0, f0, t0 = (metric(s, "shardlog_ruler_rule_evaluations_total"),
                          metric(s, "shardlog_ruler_group_evaluations_total"),
                          metric(s, "shardlog_ruler_rule_evaluation_failures_total"), time.time())
        time.sleep(a.seconds)
        e1, g1, f1, t1 = (metric(s, "shardlog_ruler_rule_evaluations_total"),
                          metric(s, "shardlog_ruler_group_evaluations_total"),
                          metric(s, "shardlog_ruler_rule_evaluation_failures_total"), time.time())
        rate = (e1 - e0) / (t1 - t0)
        print(f"{a.rules} rules over [{a.window}] windows on {a.lines:,} lines, {a.cores} core(s): "
              f"{rate:,.1f} rule evaluations/s ({(g1 - g0) / (t1 - t0):,.1f} groups/s, "
              f"{f1 - f0:.0f} failed) over {t1 - t0:.0f} s", flush=True)
        with_rules, without = [], []
        for _ in range(a.ingest_rounds):
            with_rules.append(pmq.push_bench(a, s, a.ingest_seconds))
            os.rename(path, path + ".off")  # hidden files are not rules: the ruler drops them
            os.rename(path + ".off", os.path.join(rules_dir, "fake", ".bench.yaml"))
            time.sleep(2)
            without.append(pmq.push_bench(a, s, a.ingest_seconds))
            os.rename(os.path.join(rules_dir, "fake", ".bench.yaml"), path)
            time.sleep(2)
            print(f"ingest round: with rules {with_rules[-1]:,.0f} lines/s, without {without[-1]:,.0f} lines/s",
                  flush=True)
        w, wo = statistics.median(with_rules), statistics.median(without)
        print(f"ingest medians: without rules {wo:,.0f} lines/s, with {a.rules} rules evaluating "
              f"{w:,.0f} lines/s = {w / wo:.0%}", flush=True)
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
