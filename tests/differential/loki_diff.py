#!/usr/bin/env python3
"""Differential check of shardlog against the real Grafana Loki.

Starts both servers on fresh data dirs, pushes the same entries into both through Loki's JSON
push API (same streams, timestamps, lines and structured metadata), asks both the same few
hundred log, range, instant and metadata queries, and compares the answers exactly (floats to
a relative 1e-9). Opt-in: it runs only when invoked with --loki-bin or with PEERS set (the
folder build-peers.sh fills); `make test` never runs it. Python 3 standard library only.

  loki_diff.py [--loki-bin PATH | PEERS=DIR] [--shardlog-bin PATH] [--only REGEX]
               [--json-out FILE] [--lines-per-system N] [--show-unsupported] [--keep] [--hold]

The data: lines of the loghub samples (testdata/loghub, several systems), each in three
renderings (label `format`): `raw` (the line; some wrapped in ANSI colours), `json` (an object
with level, msg, status, duration, bytes, latency_ms, req{method,path}, tags[], user, ok,
derived deterministically from the line; a few truncated on purpose) and `logfmt` (the same
fields; a few with a stray `=`). Stream labels: app, env, level, format. Structured metadata:
pod on every entry, region on a third of them. Every entry has its own timestamp (no ties, so
`limit` picks the same entries on both sides), spread over two hours ending five minutes ago.

Verdict per query: `agree` (same HTTP status; for 200 the same result type, label sets,
timestamps, values, entries and their order), `unsupported` (Loki answered, shardlog said "not
supported" or has no such endpoint: a known gap, counted apart) or `disagree`. Queries Loki
refuses outside the `errors` category are listed too: they are bugs of this query list.
Exit status: 0 when every query agrees, 1 otherwise, 2 when it could not run.
"""
import argparse
import collections
import decimal
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NS = 1_000_000_000

# The systems loaded by default: each has its own line shape (see testdata/loghub/README.md).
SYSTEMS = ["Apache", "HDFS", "OpenSSH", "Linux", "Zookeeper", "OpenStack", "Spark", "Hadoop"]

# A `pattern` expression that matches the raw lines of each system.
RAW_PATTERNS = {
    "apache": "[<_>] [<lvl>] <msg>",
    "hdfs": "<date> <time> <pid> <lvl> <component>: <msg>",
    "openssh": "<_> <_> <_> <host> sshd[<pid>]: <msg>",
    "linux": "<_> <_> <_> combo <proc>: <msg>",
    "zookeeper": "<date> <time> - <lvl> [<thread>] - <msg>",
    "openstack": "<file> <date> <time> <pid> <lvl> <component> [<req>] <msg>",
    "spark": "<date> <time> <lvl> <component>: <msg>",
    "hadoop": "<date> <time> <lvl> [<thread>] <component>: <msg>",
}

# Range aggregations Loki accepts `by`/`without` on (pkg/logql/syntax/ast.go).
GROUPING_ALLOWED = {"avg_over_time", "stddev_over_time", "stdvar_over_time", "quantile_over_time",
                    "max_over_time", "min_over_time", "first_over_time", "last_over_time"}

LEVEL_RULES = [
    ("error", re.compile(r"\b(ERROR|FATAL|SEVERE|error|fatal|Failed|failed|failure|Invalid|invalid)\b")),
    ("warn", re.compile(r"\b(WARN|WARNING|warn|warning|notice)\b")),
    ("debug", re.compile(r"\bDEBUG\b")),
    ("info", re.compile(r"\bINFO\b")),
]
STATUSES = [200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 404, 404, 500, 502, 503]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
PATHS = ["/api/v1/users", "/api/v1/orders", "/health", "/static/app.js", "/api/v2/search", "/login"]
USERS = ["alice", "bob", "carol", "", "dave", ""]
TAGS = ["edge", "batch", "auth", "cache", "db"]


def h(*parts):
    """A stable 64-bit hash of the parts (the data must be the same on every run)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


# --------------------------------------------------------------------------------------------
# The data


def derive_fields(app, i, line):
    """The structured fields of one line: level from its words, the rest from a hash."""
    x = h(app, i)
    level = None
    for name, rule in LEVEL_RULES:
        if rule.search(line):
            level = name
            break
    if level is None:
        level = ["info"] * 7 + ["debug"] * 2 + ["warn"]
        level = level[x % len(level)]
    status = STATUSES[(x >> 4) % len(STATUSES)]
    if level == "error" and (x >> 9) % 2 == 0:
        status = 500 + (x >> 11) % 4
    unit = (x >> 14) % 5
    if unit == 0:
        duration = f"{(x >> 17) % 900 + 1}ms"
    elif unit == 1:
        duration = f"{(x >> 17) % 50 / 10}s"
    elif unit == 2:
        duration = f"{(x >> 17) % 2000}us"
    elif unit == 3:
        duration = f"{(x >> 17) % 3 + 1}m{(x >> 19) % 60}s"
    else:
        duration = f"{(x >> 17) % 300 + 1}.{(x >> 21) % 10}ms"
    size = (x >> 24) % 4
    if size == 0:
        nbytes = f"{(x >> 26) % 1000}B"
    elif size == 1:
        nbytes = f"{(x >> 26) % 100 / 10}KB"
    elif size == 2:
        nbytes = f"{(x >> 26) % 8 + 1}MiB"
    else:
        nbytes = f"{(x >> 26) % 64}KiB"
    return {
        "level": level,
        "msg": line,
        "status": status,
        "duration": duration,
        "bytes": nbytes,
        "latency_ms": round(((x >> 30) % 100000) / 37.0, 3),
        "req": {"method": METHODS[(x >> 34) % len(METHODS)], "path": PATHS[(x >> 37) % len(PATHS)]},
        "tags": [TAGS[(x >> 40) % len(TAGS)], TAGS[(x >> 43) % len(TAGS)]],
        "user": USERS[(x >> 46) % len(USERS)],
        "ok": status < 400,
    }


def logfmt_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v)
    if s and not re.search(r'[\s="\\]', s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(fmt, app, i, line, f):
    x = h("render", app, i)
    if fmt == "raw":
        return f"\x1b[1;31m{line}\x1b[0m" if x % 7 == 0 else line
    if fmt == "json":
        out = json.dumps(f, separators=(",", ":"), ensure_ascii=False)
        return out[:-5] if x % 37 == 0 else out  # a truncated object: JSONParserErr
    flat = {"level": f["level"], "msg": f["msg"], "status": f["status"], "duration": f["duration"],
            "bytes": f["bytes"], "latency_ms": f["latency_ms"], "method": f["req"]["method"],
            "path": f["req"]["path"], "user": f["user"], "ok": f["ok"]}
    out = " ".join(f"{k}={logfmt_value(v)}" for k, v in flat.items())
    return out + " =oops" if x % 41 == 0 else out  # a stray '=': LogfmtParserErr


def build_entries(loghub, systems, per_system, end_ns, window_ns):
    """Every entry: (ts_ns, stream labels, line, structured metadata), sorted by time."""
    events = []
    lines = {}
    for system in systems:
        path = os.path.join(loghub, f"{system}_2k.log")
        with open(path, encoding="utf-8", errors="replace") as fh:
            ls = [l.rstrip("\r\n") for l in fh if l.strip()]
        lines[system.lower()] = ls[:per_system]
    for i in range(per_system):
        for app, ls in lines.items():
            if i < len(ls):
                events.append((app, i, ls[i]))
    start_ns = end_ns - window_ns
    spacing = window_ns // max(len(events), 1)
    entries = []
    for g, (app, i, line) in enumerate(events):
        f = derive_fields(app, i, line)
        x = h("ts", app, i)
        base = start_ns + g * spacing + x % max(spacing // 2, 1)
        env = ["prod", "staging"][(x >> 20) % 2]
        md = {"pod": f"{app}-{(x >> 22) % 2}"}
        if (x >> 24) % 3 == 0:
            md["region"] = ["eu", "us"][(x >> 26) % 2]
        for k, fmt in enumerate(["raw", "json", "logfmt"]):
            # distinct timestamps: 1 ms apart plus a few nanoseconds, so that nothing ties
            ts = base + k * 1_000_000 + 7 * k
            labels = {"app": app, "env": env, "level": f["level"], "format": fmt}
            entries.append((ts, labels, render(fmt, app, i, line, f), md))
    entries.sort(key=lambda e: e[0])
    return entries, lines


def push_bodies(entries, batch=2000):
    """Loki JSON push bodies, `batch` entries each, streams in time order within each body."""
    for off in range(0, len(entries), batch):
        streams = collections.OrderedDict()
        for ts, labels, line, md in entries[off:off + batch]:
            key = tuple(sorted(labels.items()))
            streams.setdefault(key, []).append([str(ts), line, md])
        body = {"streams": [{"stream": dict(k), "values": v} for k, v in streams.items()]}
        yield json.dumps(body).encode()


def common_words(lines):
    """Per system, two words that occur in some but not most of its lines, the second in some
    but not all of the lines that hold the first (so `|= w1 |= w2` and `|= w1 != w2` both match)."""
    out = {}
    for app, ls in lines.items():
        sets = [set(re.findall(r"[A-Za-z]{5,}", l)) for l in ls]
        df = collections.Counter()
        for ws in sets:
            df.update(ws)
        good = [w for w, c in sorted(df.items(), key=lambda wc: (-wc[1], wc[0]))
                if 0.05 * len(ls) <= c <= 0.6 * len(ls)]
        if not good:
            out[app] = ["zzzzz", "zzzzz"]
            continue
        w1 = good[0]
        with_w1 = [ws for ws in sets if w1 in ws]
        both = lambda w: sum(1 for ws in with_w1 if w in ws)
        w2 = next((w for w in good[1:] if 0 < both(w) < len(with_w1)), good[1] if len(good) > 1 else w1)
        out[app] = [w1, w2]
    return out


# --------------------------------------------------------------------------------------------
# The servers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self, name, cmd, env, cwd, port, ready_path, log_path):
        self.name, self.port, self.ready_path = name, port, ready_path
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, secs):
        t = time.time()
        while time.time() - t < secs:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                with urllib.request.urlopen(self.base + self.ready_path, timeout=2) as r:
                    if r.status == 200:
                        return time.time() - t
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {secs}s; log: {self.log_path}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def derive_loki_config(src, dst):
    """The peer config with `approx_topk` enabled (off by default: Loki answers 500 "approx_topk
    is not enabled"); the one change made to it."""
    with open(src) as fh:
        text = fh.read()
    if "limits_config:\n" not in text:
        raise RuntimeError(f"{src} has no limits_config section to enable approx_topk in")
    text = text.replace("limits_config:\n", "limits_config:\n  shard_aggregations: [approx_topk]\n", 1)
    with open(dst, "w") as fh:
        fh.write(text)
    return dst


def http(base, path, params=None, headers=None, body=None, timeout=120):
    """(status, content type, bytes) of one request; status 0 when no answer came."""
    url = base + path
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, "", f"no answer: {e}".encode()


def push_all(server, entries):
    for body in push_bodies(entries):
        st, _, text = http(server.base, "/loki/api/v1/push", headers={"Content-Type": "application/json"}, body=body)
        if st not in (200, 204):
            raise RuntimeError(f"push to {server.name}: {st} {text[:300]!r}")


def wait_loaded(loki, shardlog, n, start_ns, end_ns, secs=120):
    """Until both count all `n` entries (Loki with a metric query, shardlog with index stats)."""
    t = time.time()
    got = {}
    while time.time() - t < secs:
        params = {"query": 'sum(count_over_time({app=~".+"}[3h]))', "time": str(end_ns + NS)}
        st, _, b = http(loki.base, "/loki/api/v1/query", params)
        if st == 200:
            r = json.loads(b)["data"]["result"]
            got["loki"] = int(float(r[0]["value"][1])) if r else 0
        st, _, b = http(shardlog.base, "/loki/api/v1/index/stats",
                        {"query": '{app=~".+"}', "start": str(start_ns - NS), "end": str(end_ns + NS)})
        if st == 200:
            got["shardlog"] = json.loads(b).get("entries", 0)
        if got.get("loki") == n and got.get("shardlog") == n:
            return time.time() - t
        time.sleep(0.5)
    raise RuntimeError(f"not all {n} entries visible after {secs}s: {got}")


# --------------------------------------------------------------------------------------------
# The queries


class Q:
    def __init__(self, category, path, params, headers=None, expect_error=False):
        self.category, self.path, self.params = category, path, params
        self.headers = headers or {}
        self.expect_error = expect_error
        self.id = ""

    def text(self):
        q = self.params.get("query") or self.params.get("match[]") or ""
        if isinstance(q, list):
            q = " ".join(q)
        rest = {k: v for k, v in self.params.items() if k not in ("query", "start", "end", "time", "match[]")}
        extra = " ".join(f"{k}={v}" for k, v in rest.items())
        hdr = " [categorize-labels]" if self.headers else ""
        return f"{self.path} {q} {extra}{hdr}".strip()


def build_queries(t0_ns, t1_ns, apps, words, ip, err_app):
    """The query list: templates over the label values, fields and words of the data;
    `err_app` is the app with the most `level="error"` lines."""
    qs = []
    s_all = '{app=~".+"}'
    a0, a1, a2 = apps[0], apps[1 % len(apps)], apps[2 % len(apps)]
    lo_s, hi_s = t0_ns // NS - 60, t1_ns // NS + 60  # the whole data, in seconds
    full = {"start": str(lo_s * NS), "end": str(hi_s * NS)}
    mid_ns = (t0_ns + t1_ns) // 2

    def log(cat, query, limit=100, direction="backward", rng=None, headers=None, **extra):
        p = {"query": query, "limit": str(limit), "direction": direction}
        p.update(rng or full)
        p.update(extra)
        qs.append(Q(cat, "/loki/api/v1/query_range", p, headers))

    def rng_q(cat, query, step="60", start=lo_s, end=hi_s, expect_error=False):
        p = {"query": query, "start": str(start), "end": str(end)}
        if step is not None:
            p["step"] = step
        qs.append(Q(cat, "/loki/api/v1/query_range", p, expect_error=expect_error))

    def inst(cat, query, at=None, expect_error=False, **extra):
        p = {"query": query, "time": str(at if at is not None else (t1_ns // NS - 600))}
        p.update(extra)
        qs.append(Q(cat, "/loki/api/v1/query", p, expect_error=expect_error))

    # ---- log queries: line filters (shardlog supports these today) -------------------------
    cat = "log/line_filter"
    for app in apps:
        w1, w2 = words[app]
        sel = f'{{app="{app}"}}'
        log(cat, f'{sel} |= "{w1}"', limit=50)
        log(cat, f'{sel} != "{w1}"', limit=50, direction="forward")
        log(cat, f'{sel} |= "{w1}" |= "{w2}"', limit=1000)
        log(cat, f'{sel} |= "{w1}" != "{w2}"', limit=20, direction="forward")
        log(cat, f'{sel} |~ `(?i){w2.lower()}`', limit=30)
        log(cat, f'{sel} !~ `{w1}|{w2}`', limit=30, direction="forward")
    for app in apps[:4]:
        w1, w2 = words[app]
        sel = f'{{app="{app}", format="raw"}}'
        log(cat, f'{sel} |= "{w1}" or "{w2}"', limit=40)
        log(cat, f'{sel} |> "<_>{w1}<_>"', limit=40)
        log(cat, f'{sel} !> "<_>{w1}<_>"', limit=40)
        log(cat, f'{sel} |~ "{w1}" or "{w2}"', limit=40)
    log(cat, f'{s_all} |= "{words[a0][0]}"', limit=5000)
    log(cat, f'{s_all} |~ `\\d+\\.\\d+\\.\\d+\\.\\d+`', limit=200, direction="forward")
    log(cat, f'{s_all} |~ `(?i)(error|fail)`', limit=300)
    log(cat, '{env="prod", level!~"info|debug"} |= "e"', limit=250)
    log(cat, '{app=~"hdfs|openssh", env!="staging"} |~ `blk_-?\\d+|sshd`', limit=100)
    log(cat, f'{s_all} |= "qzqzqz-absent"', limit=100)
    log(cat, f'{s_all} |= ``', limit=10)
    log(cat, f'{s_all} |= ip("{ip}")', limit=100)
    log(cat, f'{s_all} |= ip("{ip.rsplit(".", 2)[0]}.0.0/16")', limit=100)
    log(cat, f'{s_all} != ip("{ip}")', limit=10)
    log(cat, '{format="json"} |= `"status":500`', limit=100)
    log(cat, '{format="logfmt"} |= "status=404" != "GET"', limit=100)

    # ---- log queries: parameters (limit, direction, boundaries) ----------------------------
    cat = "log/params"
    for limit in (1, 7, 100, 2000):
        for direction in ("forward", "backward"):
            log(cat, f'{{app="{a1}"}}', limit=limit, direction=direction)
    # [start, end): both boundaries fall on entries
    log(cat, s_all, limit=5000, direction="forward", rng={"start": str(mid_ns), "end": str(mid_ns + 600 * NS)})
    log(cat, f'{{app="{a0}", format="json"}}', limit=100, rng={"start": str(t0_ns), "end": str(t0_ns + 300 * NS)})
    log(cat, s_all, limit=100, rng={"start": str(t1_ns - 60 * NS), "end": str(t1_ns)})
    log(cat, s_all, limit=100, rng={"start": str(lo_s), "end": str(hi_s)})  # seconds
    log(cat, s_all, limit=10, rng={"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mid_ns // NS)),
                                   "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mid_ns // NS + 3600))})
    log(cat, f'{{app="{a2}"}}', limit=50, direction="forward", interval="60s")
    log(cat, '{app="nope"}', limit=10)
    log(cat, '{level="error", env="staging"}', limit=5000, direction="forward")

    # ---- log queries: parsers --------------------------------------------------------------
    cat = "log/parser"
    for app in apps[:4]:
        js, lf, raw = (f'{{app="{app}", format="{f}"}}' for f in ("json", "logfmt", "raw"))
        log(cat, f"{js} | json", limit=30)
        log(cat, f'{js} | json st="status", m="req.method", first_tag="tags[0]", u="user"', limit=30)
        log(cat, f"{lf} | logfmt", limit=30, direction="forward")
        log(cat, f'{raw} | pattern "{RAW_PATTERNS.get(app, "<_> <msg>")}"', limit=30)
    js, lf, raw = '{format="json"}', '{format="logfmt"}', '{format="raw"}'
    log(cat, f'{js} | json | line_format "{{{{.req_path}}}}"', limit=20)
    log(cat, f"{js} | json status, latency_ms", limit=50)
    log(cat, f'{js} | json req_method="req.method", path=`req["path"]`', limit=50)
    log(cat, f'{js} | json t1="tags[1]", nothere="a.b.c"', limit=20)
    log(cat, f"{js} | json | json", limit=10)
    log(cat, f"{lf} | logfmt --strict", limit=40)
    log(cat, f"{lf} | logfmt --keep-empty", limit=40)
    log(cat, f"{lf} | logfmt --strict --keep-empty", limit=40)
    log(cat, f'{lf} | logfmt lvl="level", st="status", m="method"', limit=40)
    log(cat, f'{lf} | logfmt --keep-empty user, path', limit=40)
    log(cat, f'{lf} | regexp `status=(?P<code>\\d+) duration=(?P<dur>\\S+)`', limit=40)
    log(cat, f'{raw} | regexp `(?P<ip>\\d+\\.\\d+\\.\\d+\\.\\d+)`', limit=40)
    log(cat, f'{raw} | regexp `^(?P<first>\\S+)`', limit=40)
    log(cat, f'{js} | pattern `{{"level":"<lvl>","msg":<_>,"status":<status>,<_>`', limit=40)
    log(cat, f'{lf} | pattern `level=<lvl> <_> status=<status> duration=<dur> <_>`', limit=40)
    log(cat, f"{js} | unpack", limit=40)
    log(cat, f"{raw} | logfmt", limit=40)
    log(cat, f"{raw} | json", limit=40)
    log(cat, f"{lf} | json", limit=20)
    log(cat, f"{js} | logfmt", limit=20)
    log(cat, f"{js} | json | logfmt", limit=20)
    log(cat, f"{lf} | logfmt | regexp `(?P<word>[a-z]+)`", limit=20)

    # ---- log queries: label filters --------------------------------------------------------
    cat = "log/label_filter"
    jp = f'{{format="json", app=~"{a0}|{a1}|{a2}"}} | json'
    lp = f'{{format="logfmt", app=~"{a0}|{a1}|{a2}"}} | logfmt'
    for base in (jp, lp):
        for flt in ('level_extracted="error"', 'level_extracted!="info"', 'user=~"a.*|b.*"', 'user!~".+"',
                    "status >= 500", "status == 404", "status != 200", "status < 300", "status <= 201",
                    "status > 499", "latency_ms > 1000.5", "latency_ms <= 100",
                    "duration > 10ms", "duration <= 1s", "duration >= 1m30s", "duration < 500us",
                    "bytes > 1KB", "bytes <= 20KiB", "bytes >= 2MiB", "bytes == 512B"):
            log(cat, f"{base} | {flt}", limit=60)
        log(cat, f'{base} | status >= 500 or user="alice"', limit=60)
        log(cat, f'{base} | status >= 400 and duration > 50ms', limit=60)
        log(cat, f'{base} | (status >= 500 or status == 404), bytes > 1KB', limit=60)
        log(cat, f'{base} | status >= 500 | user != ""', limit=60)
    log(cat, f'{s_all} | env="prod" | level=~"warn|error"', limit=80)
    log(cat, f'{s_all} | pod="{a0}-1"', limit=80)
    log(cat, f'{s_all} | region="eu"', limit=80, direction="forward")
    log(cat, f'{s_all} | region=""', limit=80)
    log(cat, f'{s_all} | region!=""', limit=80)
    log(cat, f'{s_all} | pod=~"{a1}-.*" | region!="us"', limit=80)
    log(cat, f'{jp} | status > 400 |= "GET"', limit=60)
    log(cat, f'{lp} | level_extracted="error" != "{words[a0][0]}"', limit=60)
    log(cat, f'{jp} | msg=~".*{words[a0][0]}.*"', limit=60)
    log(cat, f'{jp} | status = 500', limit=60)
    log(cat, f'{jp} | status > 1KB', limit=60)
    log(cat, f'{jp} | ok="true", req_method="POST"', limit=60)
    log(cat, f'{jp} | nosuchlabel > 1', limit=60)
    log(cat, f'{jp} | nosuchlabel=""', limit=20)

    # ---- log queries: line_format / label_format with template functions ------------------
    cat = "log/format"
    jsel = f'{{app=~"{a0}|{a1}", format="json"}} | json'
    templates = [
        "{{.level}} {{.app}} {{.env}} {{.pod}}",
        "{{ToUpper .level_extracted}} {{ToLower .req_method}}",
        '{{Replace .msg " " "_" 3}}',
        '{{Trim .req_path "/"}}|{{TrimLeft .req_path "/a"}}|{{TrimRight .req_path "s"}}',
        '{{TrimPrefix .req_path "/api"}}|{{TrimSuffix .req_path ".js"}}|{{TrimSpace "  x  "}}',
        '{{regexReplaceAll "[0-9]+" .msg "N"}}',
        '{{regexReplaceAllLiteral "([a-z]+)" .req_path "$1"}}',
        '{{count "e" .msg}} {{urlencode .req_path}} {{urldecode "a%20b%2Fc"}}',
        "{{.bytes | bytes}} {{duration .duration}} {{duration_seconds .duration}}",
        "{{ __timestamp__ | unixEpoch }} {{ unixEpochMillis __timestamp__ }} {{ unixEpochNanos __timestamp__ }}",
        '{{ __timestamp__ | date "2006-01-02T15:04:05.000Z07:00" }}',
        '{{ toDateInZone "2006-01-02" "UTC" "2024-03-01" | unixEpoch }} {{ unixToTime "1700000000" | date "2006" }}',
        '{{ toDate "2006-01-02" "2021-11-20" | unixEpoch }}',
        "{{ __line__ }}",
        "{{ len __line__ }}",
        "{{alignLeft 5 .app}}|{{alignRight 8 .env}}",
        '{{b64enc .app}} {{b64dec "aGVsbG8="}}',
        "{{ .msg | lower | trunc 20 }} {{ upper .level }} {{ title .req_method }}",
        '{{ substr 0 5 .msg }}|{{ repeat 2 .env }}|{{ replace "a" "4" .app }}|{{ trim " x " }}',
        '{{ trimAll "/" .req_path }}|{{ trimSuffix "s" .req_path }}|{{ trimPrefix "/api" .req_path }}',
        '{{ indent 2 .app }}|{{ nindent 2 .env }}',
        '{{ if contains "error" .msg }}E{{ else }}-{{ end }}{{ if hasPrefix "/api" .req_path }}A{{ end }}{{ if hasSuffix ".js" .req_path }}J{{ end }}',
        "{{ add .status 1 }} {{ sub .status 100 }} {{ mul .status 2 }} {{ div .status 100 }} {{ mod .status 7 }}",
        "{{ addf .latency_ms 0.5 }} {{ subf .latency_ms 1 }} {{ mulf .latency_ms 2 }} {{ divf .latency_ms 3 }}",
        "{{ max .status 300 }} {{ min .status 300 }} {{ maxf .latency_ms 10.5 }} {{ minf .latency_ms 10.5 }}",
        "{{ ceil .latency_ms }} {{ floor .latency_ms }} {{ round .latency_ms 1 }}",
        "{{ int .latency_ms }} {{ float64 .status }} {{ int .status }}",
        '{{ default "anonymous" .user }}|{{ default "x" .nothere }}',
        '{{ if eq .level_extracted "error" }}E{{ else if eq .level_extracted "warn" }}W{{ else }}-{{ end }}',
        "{{ with .user }}user={{ . }}{{ else }}anon{{ end }}",
        "{{ $o := fromJson __line__ }}{{ $o.req.method }} {{ $o.status }}",
        "{{ range $k, $v := fromJson __line__ }}{{ $k }},{{ end }}",
        '{{ printf "%05d|%s" (int .status) .app }}',
        "{{ and .user .req_path }}|{{ or .user \"none\" }}|{{ not .user }}",
        '{{ lt (int .status) 400 }} {{ ge .status "500" }} {{ ne .env "prod" }}',
        '{{ .app }}{{/* a comment */}}-{{ "literal" }}-{{ 42 }}',
        "{{ .nothere }}",
        '{{ if and (eq .env "prod") (gt (int .status) 499) }}prod-5xx{{ end }}',
        '{{- .app -}} {{ .env }}',
    ]
    for t in templates:
        log(cat, f"{jsel} | line_format `{t}`", limit=25)
    lsel = f'{{app="{a1}", format="logfmt"}} | logfmt'
    log(cat, f'{lsel} | line_format "{{{{.method}}}} {{{{.path}}}} {{{{.status}}}}"', limit=25)
    log(cat, f'{{app="{a2}", format="raw"}} | line_format "{{{{.app}}}}: {{{{__line__}}}}"', limit=25)
    log(cat, f'{jsel} | line_format "{{{{.req_method}}}}" |= "GET"', limit=25)
    log(cat, f'{jsel} | line_format "{{{{.msg}}}}" | logfmt', limit=10)
    for lf_ in ("lvl=level", 'app2="{{.app}}-{{.env}}"', 'status_class=`{{div .status 100}}xx`',
                "level=env", "a=`{{.app}}`, b=app", "dur_s=`{{duration .duration}}`",
                "ts=`{{__timestamp__ | unixEpochMillis}}`", 'msg=""', "env=`{{.nothere}}`",
                "pod=`{{ToUpper .pod}}`"):
        log(cat, f"{jsel} | label_format {lf_}", limit=25)
    log(cat, f"{jsel} | label_format lvl=level | line_format `{{{{.lvl}}}}`", limit=25)
    log(cat, f"{lsel} | label_format method=path, path=method", limit=25)

    # ---- log queries: drop / keep / decolorize ---------------------------------------------
    cat = "log/drop_keep"
    for stage in ("drop msg, req_path, tags", "keep app, status, level_extracted", "drop level",
                  'drop env="prod"', 'keep app, level="error"', "drop __error__, __error_details__",
                  "keep status", "drop pod, region", 'drop status=~"5.."', "keep nothere"):
        log(cat, f"{jsel} | {stage}", limit=25)
    log(cat, '{format="raw"} | drop level, env', limit=40)
    log(cat, f'{lsel} | keep method, path', limit=40)
    cat = "log/decolorize"
    for app in apps[:3]:
        log(cat, f'{{app="{app}", format="raw"}} | decolorize', limit=60)
    log(cat, '{format="raw"} | decolorize |= "[0m"', limit=60)
    log(cat, '{format="raw"} |= "[1;31m" | decolorize', limit=60)
    log(cat, '{format="raw"} | decolorize | line_format "<{{__line__}}>"', limit=20)

    # ---- log queries: __error__ ------------------------------------------------------------
    cat = "log/error"
    log(cat, f'{{app="{a0}", format="raw"}} | json', limit=30)
    log(cat, '{format="json"} | json | __error__=""', limit=100)
    log(cat, '{format="json"} | json | __error__!=""', limit=100)
    log(cat, '{format="json"} | json | __error__="JSONParserErr"', limit=100)
    log(cat, '{format="json"} | json | __error__!="" | drop __error_details__', limit=100)
    log(cat, '{format="logfmt"} | logfmt | __error__!=""', limit=100)
    log(cat, '{format="logfmt"} | logfmt --strict | __error__!=""', limit=100)
    log(cat, '{format="json"} | json | status > 400 | __error__!=""', limit=50)
    log(cat, '{format="json"} | json | duration > 1s | __error__!=""', limit=50)
    log(cat, '{format="json"} | json | bytes > 1KB | __error__=~".+"', limit=50)
    log(cat, '{format="json"} | json | latency_ms > 10 | __error__="LabelFilterErr"', limit=50)
    log(cat, f'{jsel} | line_format `{{{{div .status 0}}}}`', limit=20)
    log(cat, f'{jsel} | label_format x=`{{{{ div 1 0 }}}}`', limit=20)
    log(cat, f'{jsel} | line_format `{{{{ fromJson .msg }}}}`', limit=20)
    log(cat, '{format="raw"} | regexp `(?P<n>\\d+)` | n > 10', limit=20)
    log(cat, '{format="raw"} | json | drop __error__', limit=20)
    log(cat, '{format="raw"} | logfmt | __error__="" | __error_details__=""', limit=20)

    # ---- log queries: the categorize-labels encoding ---------------------------------------
    cat = "log/categorize"
    ch = {"X-Loki-Response-Encoding-Flags": "categorize-labels"}
    log(cat, f'{{app="{a0}"}}', limit=30, headers=ch)
    log(cat, f'{{app="{a1}", format="json"}} | json', limit=30, headers=ch)
    log(cat, f'{{app="{a2}", format="logfmt"}} | logfmt | status >= 400', limit=30, headers=ch)
    log(cat, f'{s_all} | region="us"', limit=30, headers=ch)

    # ---- range metric queries --------------------------------------------------------------
    cat = "range/agg"
    for op in ("count_over_time", "rate", "bytes_over_time", "bytes_rate"):
        rng_q(cat, f"sum by (app) ({op}({s_all}[5m]))", step="60")
        rng_q(cat, f'{op}({{app="{a0}"}}[1m])', step="300")
        rng_q(cat, f'sum by (level) ({op}({s_all} |= "{words[a1][0]}" [10m]))', step="37")
        rng_q(cat, f'sum({op}({{app="{a2}", format="json"}} | json | status >= 500 [1h]))', step="600")
        rng_q(cat, f'sum without (pod, region, level, format) ({op}({{env="prod"}}[90s]))', step=None)
        rng_q(cat, f'{op}({{app="{err_app}", level="error"}}[5m])', step="60",
              start=(t0_ns + 1800 * NS) // NS, end=(t0_ns + 2700 * NS) // NS)
    rng_q(cat, f'absent_over_time({{app="nope"}}[5m])', step="300")
    rng_q(cat, f'absent_over_time({{app="{a0}", level="debug"}} |= "qzqzqz" [5m])', step="300")
    rng_q(cat, f'absent_over_time({{app="{a0}"}}[1m])', step="60")
    rng_q(cat, f'absent_over_time({{app=~"{a0}|nope"}}[2m])', step="900")
    rng_q(cat, f'count_over_time({{app="{a0}"}}[2h])', step="3600")
    rng_q(cat, f'sum(count_over_time({s_all}[1m]))', step="1")
    rng_q(cat, f'sum by (app) (count_over_time({s_all}[5m]))', step="60",
          start=t1_ns // NS + 3600, end=t1_ns // NS + 7200)  # after the data: empty
    rng_q(cat, f'sum by (pod) (count_over_time({s_all} | region="eu" [10m]))', step="120")
    rng_q(cat, f'sum by (level_extracted) (count_over_time({{format="json"}} | json | __error__="" [10m]))', step="300")
    rng_q(cat, f'sum by (app) (count_over_time({{format="json"}} | json [10m]))', step="300", expect_error=True)  # __error__ series
    rng_q(cat, f'sum by (app) (count_over_time({{format="logfmt"}} | logfmt | level_extracted="error" [10m]))', step="300")
    rng_q(cat, f'sum by (level) (rate({s_all} | logfmt | level=~"err.*" [5m]))', step="300")
    rng_q(cat, f'sum by (status) (count_over_time({{format="json"}} | json | __error__="" | status >= 500 [30m]))', step="600")
    rng_q(cat, f'sum by (first) (count_over_time({{format="raw", app="{a0}"}} | pattern "<first> <_>" [10m]))', step="600")
    rng_q(cat, f'sum by (app) (count_over_time({s_all} | pattern "<_> <_>" [10m]))', step="600", expect_error=True)

    cat = "range/unwrap"
    jq = '{format="json"} | json | __error__=""'
    lq = '{format="logfmt"} | logfmt | __error__=""'
    unwraps = [
        (jq, "unwrap latency_ms"), (jq, "unwrap status"), (lq, "unwrap duration(duration)"),
        (lq, "unwrap duration_seconds(duration)"), (jq, "unwrap bytes(bytes)"),
    ]
    for op in ("sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "stddev_over_time",
               "stdvar_over_time", "first_over_time", "last_over_time", "rate", "rate_counter"):
        for k, (src, uw) in enumerate(unwraps):
            grouping = ["sum by (app) ({x})", "{x}", "max by (env) ({x})", "sum({x})", "avg by (level) ({x})"][k]
            inner = f"{op}({src} | {uw} [5m])"
            if grouping == "{x}":
                inner = f"{op}({src} | {uw} [5m]) by (app, env)"
            rng_q(cat, grouping.format(x=inner), step=["60", "300", "37"][k % 3],
                  expect_error=grouping == "{x}" and op not in GROUPING_ALLOWED)
    for qv in ("0.5", "0.99", "0", "1"):
        rng_q(cat, f"quantile_over_time({qv}, {jq} | unwrap latency_ms [5m]) by (app)", step="300")
    rng_q(cat, f"quantile_over_time(0.99, {lq} | unwrap duration(duration) [5m]) by (level)", step="300")
    rng_q(cat, f"sum by (app) (quantile_over_time(0.9, {jq} | unwrap bytes(bytes) [10m]))", step="600")
    rng_q(cat, f'max_over_time({jq} | unwrap latency_ms [1h]) without (pod, region, msg, req_path, req_method, user, ok, duration, bytes, status, level_extracted, tags)', step="1800")
    # conversion errors: "12ms" is no float
    rng_q(cat, 'sum by (app) (sum_over_time({format="json"} | json | unwrap duration [5m]))', step="300", expect_error=True)
    rng_q(cat, 'sum by (app) (sum_over_time({format="json"} | json | unwrap duration | __error__="" [5m]))', step="300")
    # parse errors (truncated objects, raw lines), then the same with them filtered out
    rng_q(cat, 'sum by (app) (sum_over_time({format="json"} | json | unwrap latency_ms [5m]))', step="300", expect_error=True)
    rng_q(cat, 'sum by (format) (sum_over_time({format=~"json|raw"} | json | unwrap latency_ms | __error__="" [5m]))', step="300")
    rng_q(cat, f'sum_over_time({{app="{a0}", format="json"}} | json latency_ms | unwrap latency_ms [10m])', step="300")
    rng_q(cat, f'avg_over_time({{app="{a0}", format="logfmt"}} | logfmt status | unwrap status [10m]) by (pod)', step="300")
    rng_q(cat, f'sum by (app) (sum_over_time({{format="raw"}} | regexp `(?P<n>\\d+)` | unwrap n | __error__="" [10m]))', step="600")

    cat = "range/offset"
    rng_q(cat, f"sum by (app) (count_over_time({s_all}[5m] offset 10m))", step="60")
    rng_q(cat, f'rate({{app="{a0}"}}[5m] offset 1h)', step="300")
    rng_q(cat, f"sum by (app) (avg_over_time({jq} | unwrap latency_ms [10m] offset 30m))", step="300")
    rng_q(cat, f'sum(count_over_time({s_all}[5m] offset 5m)) - sum(count_over_time({s_all}[5m]))', step="120")
    inst(cat, f"sum by (app) (count_over_time({s_all}[10m] offset 20m))")

    # ---- vector aggregations ---------------------------------------------------------------
    cat = "vector/agg"
    inner = f"count_over_time({s_all}[5m])"
    for agg in ("sum", "avg", "min", "max", "stddev", "stdvar", "count"):
        rng_q(cat, f"{agg} by (app) ({inner})", step="300")
        rng_q(cat, f"{agg} without (level, pod, region, format) (rate({s_all}[5m]))", step="300")
        rng_q(cat, f"{agg}(rate({{app=\"{a0}\"}}[5m]))", step="600")
        rng_q(cat, f"{agg}(sum by (app, env) ({inner})) by (env)", step="600")
    for agg, n in (("topk", 3), ("bottomk", 2), ("topk", 1), ("bottomk", 20)):
        rng_q(cat, f"{agg}({n}, sum by (app) ({inner}))", step="300")
        inst(cat, f"{agg}({n}, sum by (app) ({inner}))")
    rng_q(cat, f"topk by (env) (1, sum by (app, env) ({inner}))", step="300")
    inst(cat, f"bottomk(2, sum by (app, env) ({inner})) by (env)")
    rng_q(cat, f"topk(5, sum by (app) (bytes_over_time({s_all}[1h])))", step="600")
    inst(cat, f"approx_topk(2, sum by (app) ({inner}))")
    for fn in ("sort", "sort_desc"):
        inst(cat, f"{fn}(sum by (app) ({inner}))")
        inst(cat, f"{fn}(sum by (app, level) (count_over_time({s_all}[30m])))")
        rng_q(cat, f"{fn}(sum by (app) ({inner}))", step="600")
    rng_q(cat, f"sum(sum by (app) ({inner}))", step="300")
    rng_q(cat, f"count(count by (level) ({inner}))", step="300")

    # ---- binary operators ------------------------------------------------------------------
    cat = "binary"
    all_ = f"sum by (app) (count_over_time({s_all}[10m]))"
    err = f'sum by (app) (count_over_time({{level="error"}}[10m]))'
    for op in ("+", "-", "*", "/", "%", "^"):
        rng_q(cat, f"{err} {op} {all_}", step="300")
    for op in (">", "<", ">=", "<=", "==", "!="):
        rng_q(cat, f"{all_} {op} 30", step="300")
        rng_q(cat, f"{all_} {op} bool 30", step="300")
    rng_q(cat, f"{err} > {all_} / 4", step="300")
    rng_q(cat, f"{err} > bool {all_} / 4", step="300")
    rng_q(cat, f"{all_} and {err}", step="300")
    rng_q(cat, f"{all_} or {err}", step="300")
    rng_q(cat, f"{all_} unless {err}", step="300")
    rng_q(cat, f"{all_} unless on (app) sum by (app, level) (count_over_time({{level=\"warn\"}}[10m]))", step="300")
    rng_q(cat, f"{all_} * 60", step="300")
    rng_q(cat, f"2 ^ {err}", step="300")
    rng_q(cat, f"{all_} % 7", step="300")
    rng_q(cat, f"-{all_}", step="300", expect_error=True)  # no unary minus in LogQL
    rng_q(cat, f"{all_} / 0", step="300")
    rng_q(cat, f"0 * {all_} / 0", step="300")
    by_lv = f"sum by (app, level) (count_over_time({s_all}[10m]))"
    rng_q(cat, f"{by_lv} / ignoring(level) group_left {all_}", step="300")
    rng_q(cat, f"{by_lv} / on(app) group_left {all_}", step="300")
    rng_q(cat, f"{all_} / on(app) group_right {by_lv}", step="300")
    rng_q(cat, f"{by_lv} / on(app) group_left(env) sum by (app, env) (count_over_time({{env=\"prod\"}}[10m]))", step="300")
    rng_q(cat, f"{err} / on(app) {all_}", step="300")
    rng_q(cat, f"{err} + ignoring(env) {all_}", step="300")
    rng_q(cat, f"{by_lv} / {all_}", step="300")  # no match: empty
    rng_q(cat, f"{by_lv} / on(app) {all_}", step="300", expect_error=True)  # many-to-one without group
    rng_q(cat, f"sum(rate({s_all}[5m])) * 2 + 1", step="300")
    rng_q(cat, f"(sum(rate({s_all}[5m])) > 0.3) * 100", step="300")
    inst(cat, f"{by_lv} / ignoring(level) group_left {all_}")
    inst(cat, f"{all_} > bool 30")
    inst(cat, f"{err} or {all_}")

    cat = "literal"
    rng_q(cat, "vector(1)+vector(1)", step="60")
    inst(cat, "vector(1)+vector(1)")
    inst(cat, "1 + 2 * 3")
    inst(cat, "2 > bool 1")
    inst(cat, "(1 - 3) / 4 ^ 2 % 5")
    rng_q(cat, "vector(2) * 3", step="300")
    rng_q(cat, f"vector(0) or sum by (app) (count_over_time({{app=\"{a0}\"}}[5m]))", step="300")
    rng_q(cat, f"sum(count_over_time({{app=\"nope\"}}[5m])) or vector(0)", step="300")
    inst(cat, "vector(3)")
    rng_q(cat, "1", step="600")
    inst(cat, "-1 + 1")

    cat = "label_replace"
    rng_q(cat, f'label_replace({all_}, "svc", "$1", "app", "(.*)")', step="300")
    rng_q(cat, f'label_replace({all_}, "app", "x-$1", "app", "h(.*)")', step="300")
    rng_q(cat, f'label_replace({all_}, "app", "", "app", "{a0}")', step="300")
    rng_q(cat, f'label_replace({by_lv}, "lv", "$1-$2", "level", "(.)(.*)")', step="600")
    inst(cat, f'label_replace({all_}, "svc", "${{1}}_svc", "app", "(.+)")')
    rng_q(cat, f'label_replace({all_}, "svc", "$1", "app", "(")', step="300", expect_error=True)

    # ---- instant queries (/query) ----------------------------------------------------------
    cat = "instant"
    times = [t1_ns // NS - 600, t0_ns // NS + 1800, t0_ns // NS + 17 * 60 + 13, t1_ns // NS + 120]
    for k, at in enumerate(times):
        inst(cat, f"sum by (app) (count_over_time({s_all}[5m]))", at=at)
        inst(cat, f'rate({{app="{apps[k % len(apps)]}"}}[10m])', at=at)
        inst(cat, f"sum by (level) (bytes_over_time({s_all}[1h]))", at=at)
        inst(cat, f"avg by (app) (avg_over_time({jq} | unwrap latency_ms [30m]))", at=at)
        inst(cat, f"quantile_over_time(0.99, {lq} | unwrap duration(duration) [30m]) by (app)", at=at)
        inst(cat, f'count_over_time({{app="{a0}", env="prod"}}[30m])', at=at)
    for op in ("sum_over_time", "min_over_time", "max_over_time", "stddev_over_time", "first_over_time",
               "last_over_time", "rate_counter"):
        inst(cat, f"{op}({jq} | unwrap status [1h]) by (app)", expect_error=op not in GROUPING_ALLOWED)
    inst(cat, f'absent_over_time({{app="nope"}}[5m])')
    inst(cat, f"sum(count_over_time({s_all}[2h]))")
    inst(cat, f"sum(count_over_time({s_all}[5m] offset 30m))")
    # Loki 3 refuses log queries on /query
    inst(cat, f'{{app="{a0}"}}', limit="10", expect_error=True)
    inst(cat, f'{{app="{a0}"}} |= "{words[a0][0]}"', limit="10", direction="forward", expect_error=True)
    inst(cat, f"sum by (app) (count_over_time({s_all}[5m]))", at=str(t1_ns - 300 * NS))  # ns time

    # ---- metadata endpoints ----------------------------------------------------------------
    cat = "meta"
    mq = lambda path, **p: qs.append(Q(cat, path, p))
    mq("/loki/api/v1/labels", **full)
    mq("/loki/api/v1/labels", start=str(mid_ns), end=str(mid_ns + 60 * NS))
    mq("/loki/api/v1/labels", query=f'{{app="{a0}"}}', **full)
    for name in ("app", "env", "level", "format", "pod", "nosuch"):
        mq(f"/loki/api/v1/label/{name}/values", **full)
    mq("/loki/api/v1/label/level/values", query=f'{{app="{a1}"}}', **full)
    mq("/loki/api/v1/label/app/values", query='{level="error", env="prod"}', **full)
    mq("/loki/api/v1/series", **{"match[]": f'{{app="{a0}"}}'}, **full)
    mq("/loki/api/v1/series", **{"match[]": ['{level="error", env="prod"}', f'{{app="{a1}", format="raw"}}']}, **full)
    mq("/loki/api/v1/series", **{"match[]": '{app=~".+"}'}, start=str(mid_ns), end=str(mid_ns + 120 * NS))
    mq("/loki/api/v1/series", **{"match[]": '{app="nope"}'}, **full)
    mq("/loki/api/v1/index/volume", query=s_all, **full)
    mq("/loki/api/v1/index/volume", query=s_all, targetLabels="level", **full)
    mq("/loki/api/v1/index/volume", query=f'{{app="{a0}"}}', aggregateBy="labels", **full)
    mq("/loki/api/v1/index/volume", query='{env="prod"}', limit="3", **full)
    mq("/loki/api/v1/index/volume_range", query=s_all, step="1800", **full)
    mq("/loki/api/v1/index/volume_range", query=f'{{app="{a1}"}}', targetLabels="level", step="600", **full)
    mq("/loki/api/v1/detected_labels", query=s_all, **full)
    mq("/loki/api/v1/detected_labels", query=f'{{app="{a0}"}}', **full)
    mq("/loki/api/v1/detected_fields", query='{format="json"}', **full)
    mq("/loki/api/v1/detected_fields", query=f'{{format="logfmt", app="{a0}"}}', **full)

    # ---- queries both must refuse ----------------------------------------------------------
    cat = "errors"
    bad = ['{app="x"} |= ', "sum(count_over_time({app=\"x\"}[5m])", 'count_over_time({app="x"})', "{}",
           '{app=~".*"}', 'sum_over_time({app="x"}[5m])', '{app="x"} | json | line_format "{{.a"',
           '{app="x"} |~ "("', 'count_over_time({app="x"}[5m]) by (app)', 'rate({app="x"}[5m]) ^^ 2',
           'topk(-1, count_over_time({app="x"}[5m]))', '{app="x"} | unwrap status',
           'sum by (app) ({app="x"})', '{app="x"} | logfmt --bogus', '{app="x"} | label_format a=b=c']
    for q in bad:
        rng_q(cat, q, step="60", expect_error=True)
    qs.append(Q(cat, "/loki/api/v1/query_range", {"query": f'{{app="{a0}"}}', "limit": "0", **full}, expect_error=True))
    qs.append(Q(cat, "/loki/api/v1/query_range", {"query": f'{{app="{a0}"}}', "direction": "sideways", **full}, expect_error=True))
    qs.append(Q(cat, "/loki/api/v1/query_range", {"query": f'{{app="{a0}"}}', "start": str(hi_s), "end": str(lo_s)}, expect_error=True))
    qs.append(Q(cat, "/loki/api/v1/query_range", {"query": f'sum(rate({{app="{a0}"}}[5m]))', "step": "-1", **full}, expect_error=True))
    qs.append(Q(cat, "/loki/api/v1/query_range", {"query": f'sum(rate({{app="{a0}"}}[5m]))', "step": "0.01", **full}, expect_error=True))

    counters = collections.Counter()
    for q in qs:
        counters[q.category] += 1
        q.id = f"{q.category}#{counters[q.category]}"
    return qs


# --------------------------------------------------------------------------------------------
# Comparison


def parse_body(ctype, raw):
    try:
        return json.loads(raw, parse_float=decimal.Decimal, parse_int=decimal.Decimal)
    except ValueError:
        return raw.decode("utf-8", "replace")


def same_float(a, b):
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if x == y:
        return True
    return abs(x - y) <= 1e-9 * max(abs(x), abs(y))


def label_key(m):
    return tuple(sorted((str(k), str(v)) for k, v in (m or {}).items()))


def fmt_labels(k):
    return "{" + ", ".join(f'{a}="{b}"' for a, b in k) + "}"


def cmp_samples(what, la, lb):
    """Compares lists of [ts, value]; returns the first difference or None."""
    if len(la) != len(lb):
        ta, tb = [p[0] for p in la], [p[0] for p in lb]
        only_a = sorted(set(ta) - set(tb))[:3]
        only_b = sorted(set(tb) - set(ta))[:3]
        return f"{what}: {len(la)} vs {len(lb)} points (only loki at {list(map(str, only_a))}, only shardlog at {list(map(str, only_b))})"
    for pa, pb in zip(la, lb):
        if len(pa) != 2 or len(pb) != 2 or pa[0] != pb[0]:
            return f"{what}: point {pa!s} vs {pb!s}"
        if not same_float(pa[1], pb[1]):
            return f"{what} at {pa[0]}: {pa[1]} vs {pb[1]}"
    return None


def group_series(result, key_field):
    g = collections.defaultdict(list)
    for s in result:
        if not isinstance(s, dict):
            return None
        g[label_key(s.get(key_field))].append(s)
    return g


def cmp_keys(ga, gb, what):
    ka, kb = set(ga), set(gb)
    if ka != kb:
        only_a = [fmt_labels(k) for k in sorted(ka - kb)[:2]]
        only_b = [fmt_labels(k) for k in sorted(kb - ka)[:2]]
        return (f"{what}: {len(ka)} vs {len(kb)} label sets; only loki: {only_a} ({len(ka - kb)}), "
                f"only shardlog: {only_b} ({len(kb - ka)})")
    for k in ka:
        if len(ga[k]) != len(gb[k]):
            return f"{what} {fmt_labels(k)} appears {len(ga[k])} vs {len(gb[k])} times"
    return None


def compare_data(path, a, b, order_matters):
    """The first difference between Loki's answer `a` and shardlog's `b` (both 200), or None."""
    if path.endswith("/detected_labels"):
        la = sorted(label_key(x).__repr__() for x in (a.get("detectedLabels") or []))
        lb = sorted(label_key(x).__repr__() for x in (b.get("detectedLabels") or []) if isinstance(b, dict))
        return None if la == lb else f"detectedLabels: {la[:4]} vs {lb[:4]}"
    if path.endswith("/detected_fields"):
        fa = sorted(label_key({k: v for k, v in x.items() if k != "parsers"}).__repr__() + repr(sorted(x.get("parsers") or []))
                    for x in (a.get("fields") or []))
        fb = sorted(label_key({k: v for k, v in x.items() if k != "parsers"}).__repr__() + repr(sorted(x.get("parsers") or []))
                    for x in (b.get("fields") or [])) if isinstance(b, dict) else []
        return None if fa == fb else f"fields: {fa[:3]} vs {fb[:3]}"
    if not isinstance(b, dict):
        return "shardlog's answer is not a JSON object"
    if a.get("status") != b.get("status"):
        return f"status field {a.get('status')!r} vs {b.get('status')!r}"
    da, db = a.get("data"), b.get("data")
    if path.endswith("/labels") or path.endswith("/values"):
        return None if (da or []) == (db or []) else f"values {da!s:.200} vs {db!s:.200}"
    if path.endswith("/series"):
        sa = sorted(label_key(x) for x in (da or []))
        sb = sorted(label_key(x) for x in (db or []) if isinstance(x, dict))
        if sa == sb:
            return None
        return f"series: {len(sa)} vs {len(sb)}; only loki {[fmt_labels(k) for k in sorted(set(sa) - set(sb))[:2]]}, only shardlog {[fmt_labels(k) for k in sorted(set(sb) - set(sa))[:2]]}"
    if not isinstance(da, dict) or not isinstance(db, dict):
        return f"data {str(da)[:80]} vs {str(db)[:80]}"
    if da.get("resultType") != db.get("resultType"):
        return f"resultType {da.get('resultType')} vs {db.get('resultType')}"
    if (da.get("encodingFlags") or []) != (db.get("encodingFlags") or []):
        return f"encodingFlags {da.get('encodingFlags')} vs {db.get('encodingFlags')}"
    rt, ra, rb = da.get("resultType"), da.get("result"), db.get("result")
    if rt == "scalar":
        if not isinstance(rb, list) or len(rb) != 2 or ra[0] != rb[0] or not same_float(ra[1], rb[1]):
            return f"scalar {ra} vs {rb}"
        return None
    if not isinstance(rb, list):
        return "shardlog's result is not a list"
    if rt == "streams":
        ga, gb = group_series(ra, "stream"), group_series(rb, "stream")
        if gb is None:
            return "shardlog's result has a non-object"
        d = cmp_keys(ga, gb, "streams")
        if d:
            return d
        for k in ga:
            for sa, sb in zip(ga[k], gb[k]):
                va, vb = sa.get("values") or [], sb.get("values") or []
                if len(va) != len(vb):
                    return f"stream {fmt_labels(k)}: {len(va)} vs {len(vb)} entries"
                for n, (ea, eb) in enumerate(zip(va, vb)):
                    if ea != eb:
                        return f"stream {fmt_labels(k)} entry {n}: {json.dumps(ea, default=str)[:160]} vs {json.dumps(eb, default=str)[:160]}"
        oa = [label_key(s.get("stream")) for s in ra]
        ob = [label_key(s.get("stream")) for s in rb]
        if oa != ob and order_matters:
            return f"same streams in another order: loki {[fmt_labels(k) for k in oa[:3]]}... shardlog {[fmt_labels(k) for k in ob[:3]]}..."
        return None
    if rt in ("matrix", "vector"):
        ga, gb = group_series(ra, "metric"), group_series(rb, "metric")
        if gb is None:
            return "shardlog's result has a non-object"
        d = cmp_keys(ga, gb, "series")
        if d:
            return d
        for k in ga:
            for sa, sb in zip(ga[k], gb[k]):
                if rt == "matrix":
                    d = cmp_samples(f"series {fmt_labels(k)}", sa.get("values") or [], sb.get("values") or [])
                else:
                    d = cmp_samples(f"series {fmt_labels(k)}", [sa.get("value")], [sb.get("value")])
                if d:
                    return d
        if order_matters:
            oa = [label_key(s.get("metric")) for s in ra]
            ob = [label_key(s.get("metric")) for s in rb]
            if oa != ob:
                return f"same series in another order: loki {[fmt_labels(k) for k in oa[:4]]} shardlog {[fmt_labels(k) for k in ob[:4]]}"
        return None
    return f"unknown resultType {rt!r}"


def order_matters(q):
    """Whether the order of a result's series is part of the answer: sort, sort_desc (and an
    instant topk/bottomk, which Loki returns sorted)."""
    text = q.params.get("query") or ""
    return bool(re.match(r"\s*(sort|sort_desc)\s*\(", text)) or (
        q.path.endswith("/query") and bool(re.match(r"\s*(topk|bottomk)\b", text)))


def is_unsupported(status, body):
    if status == 404:
        return True
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return status in (400, 501) and "not supported" in text.lower()


def judge(q, la, sb, strict_order=False):
    """(verdict, difference, order note) for one query. The note says how the order of streams
    or series differs when nothing else does (Loki sorts them by label set; Grafana ignores the
    order): a disagreement only with `strict_order`."""
    (sa, ba), (ss, bs) = la, sb
    if sa != 200 or ss != 200:
        if sa == ss:
            return "agree", None, None
        if is_unsupported(ss, bs) and not is_unsupported(sa, ba):
            return "unsupported", f"shardlog {ss}: {str(bs).strip()[:160]}", None
        return "disagree", f"HTTP status {sa} vs {ss}", None
    d = compare_data(q.path, ba, bs, order_matters(q))
    if d is not None:
        return "disagree", d, None
    note = compare_data(q.path, ba, bs, True)
    if note is not None and strict_order:
        return "disagree", note, None
    return "agree", None, note


def abridge(body, n=600):
    s = body if isinstance(body, str) else json.dumps(body, default=str, separators=(",", ":"))
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        s = json.dumps({k: v for k, v in body["data"].items() if k != "stats"}, default=str, separators=(",", ":"))
    s = s.strip()
    return s if len(s) <= n else s[:n] + f"... ({len(s)} chars)"


def is_empty(body):
    if not isinstance(body, dict):
        return False
    d = body.get("data")
    if isinstance(d, dict):
        return not d.get("result")
    if "detectedLabels" in body:
        return not body["detectedLabels"]
    if "fields" in body:
        return not body["fields"]
    return not d


# --------------------------------------------------------------------------------------------
# Main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loki-bin", help="Loki binary (default: $PEERS/bin/loki; one of the two is required)")
    ap.add_argument("--loki-config", default=os.environ.get("LOKI_CONFIG") or os.path.join(
        os.path.dirname(REPO), "shared", "tools", "peer-configs", "loki.yaml"),
        help="Loki config (default: ../shared/tools/peer-configs/loki.yaml next to the repository)")
    ap.add_argument("--shardlog-bin", default=os.path.join(REPO, "target", "release", "shardlog"))
    ap.add_argument("--cores", type=int, default=2, help="shardlog --cores (default 2)")
    ap.add_argument("--loghub", default=os.path.join(REPO, "testdata", "loghub"))
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="loghub systems to load (comma-separated)")
    ap.add_argument("--lines-per-system", type=int, default=300, help="lines per system; each is loaded 3 times")
    ap.add_argument("--only", help="run only the queries whose id, category or text matches this regex")
    ap.add_argument("--json-out", help="write every query, both answers and the verdicts here")
    ap.add_argument("--show-unsupported", action="store_true", help="print each query shardlog says it does not support")
    ap.add_argument("--strict-order", action="store_true",
                    help="the order of streams and series counts too (by default only where the query sorts)")
    ap.add_argument("--list", action="store_true", help="print the queries and exit (starts nothing)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, server logs)")
    ap.add_argument("--hold", action="store_true", help="leave both servers running after the run until Ctrl-C")
    a = ap.parse_args()
    a.shardlog_bin = os.path.abspath(a.shardlog_bin)  # the servers run in their data dirs

    systems = [s for s in a.systems.split(",") if s]
    end_ns = (time.time_ns() - 5 * 60 * NS) // NS * NS
    window_ns = 2 * 3600 * NS
    entries, lines = build_entries(a.loghub, systems, a.lines_per_system, end_ns, window_ns)
    apps = list(lines)
    words = common_words(lines)
    ips = re.findall(r"\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\b", "\n".join(l for ls in lines.values() for l in ls))
    ip = collections.Counter(ips).most_common(1)[0][0] if ips else "10.0.0.1"
    t0_ns, t1_ns = entries[0][0], entries[-1][0]
    errors_per_app = collections.Counter(e[1]["app"] for e in entries if e[1]["level"] == "error")
    err_app = errors_per_app.most_common(1)[0][0] if errors_per_app else apps[0]
    queries = build_queries(t0_ns, t1_ns, apps, words, ip, err_app)
    if a.only:
        rx = re.compile(a.only)
        queries = [q for q in queries if rx.search(q.id) or rx.search(q.category) or rx.search(q.text())]
    if a.list:
        for q in queries:
            print(f"{q.id:24} {q.text()}")
        print(f"{len(queries)} queries", file=sys.stderr)
        return 0

    peers = os.environ.get("PEERS")
    loki_bin = a.loki_bin or (os.path.join(peers, "bin", "loki") if peers else None)
    loki_bin = loki_bin and os.path.abspath(loki_bin)
    if not loki_bin:
        print("loki_diff: opt-in: give --loki-bin PATH or set PEERS (build-peers.sh's folder); not run",
              file=sys.stderr)
        return 2
    for what, p in (("Loki", loki_bin), ("shardlog", a.shardlog_bin), ("Loki config", a.loki_config)):
        if not os.path.exists(p):
            print(f"loki_diff: {what} not found: {p}", file=sys.stderr)
            return 2

    work = tempfile.mkdtemp(prefix="loki_diff.")
    servers = []
    started = time.time()
    try:
        env = dict(os.environ)
        env.setdefault("TZ", "UTC")  # `date` in templates formats in local time: the same zone for both
        loki_data = os.path.join(work, "loki")
        os.makedirs(loki_data)
        lport = free_port()
        lenv = dict(env, LOKI_DATA=loki_data, LOKI_HTTP_PORT=str(lport), LOKI_GRPC_PORT=str(free_port()))
        loki_config = derive_loki_config(a.loki_config, os.path.join(work, "loki.yaml"))
        loki = Server("loki", [loki_bin, f"-config.file={loki_config}", "-config.expand-env=true"],
                      lenv, loki_data, lport, "/ready", os.path.join(work, "loki.log"))
        servers.append(loki)
        sdata = os.path.join(work, "shardlog")
        os.makedirs(sdata)
        sport = free_port()
        shardlog = Server("shardlog", [a.shardlog_bin, "serve", "--data-dir", sdata, "--http-addr", f"127.0.0.1:{sport}",
                                       "--syslog-tcp-addr", "", "--syslog-udp-addr", "", "--cores", str(a.cores)],
                          env, sdata, sport, "/ready", os.path.join(work, "shardlog.log"))
        servers.append(shardlog)
        shardlog.wait_ready(60)
        t_ready = loki.wait_ready(180)
        print(f"servers ready (Loki after {t_ready:.1f} s); loading {len(entries)} entries "
              f"({len(apps)} systems x {a.lines_per_system} lines x 3 renderings)", flush=True)
        t = time.time()
        push_all(loki, entries)
        push_all(shardlog, entries)
        wait_loaded(loki, shardlog, len(entries), t0_ns, t1_ns)
        print(f"loaded and visible on both in {time.time() - t:.1f} s; asking {len(queries)} queries", flush=True)

        records = []
        spent = collections.Counter()
        t = time.time()
        for q in queries:
            t_q = time.perf_counter()
            ra = http(loki.base, q.path, q.params, q.headers)
            t_mid = time.perf_counter()
            rb = http(shardlog.base, q.path, q.params, q.headers)
            spent["loki"] += t_mid - t_q
            spent["shardlog"] += time.perf_counter() - t_mid
            la, lb = (ra[0], parse_body(ra[1], ra[2])), (rb[0], parse_body(rb[1], rb[2]))
            verdict, diff, order_note = judge(q, la, lb, a.strict_order)
            records.append({"id": q.id, "category": q.category, "path": q.path, "params": q.params,
                            "headers": q.headers, "expect_error": q.expect_error, "verdict": verdict, "diff": diff,
                            "order_note": order_note,
                            "loki": {"status": la[0], "body": la[1]}, "shardlog": {"status": lb[0], "body": lb[1]}})
        query_secs = time.time() - t
        report(records, a.show_unsupported)
        total = time.time() - started
        print(f"\ntimes: queries {query_secs:.1f} s (answering: Loki {spent['loki']:.1f} s, shardlog "
              f"{spent['shardlog']:.1f} s), whole run {total:.1f} s")
        if a.json_out:
            meta = {"entries": len(entries), "end_ns": end_ns, "lines_per_system": a.lines_per_system, "apps": apps, "words": words, "ip": ip, "t0_ns": t0_ns, "t1_ns": t1_ns,
                    "loki_bin": loki_bin, "shardlog_bin": a.shardlog_bin, "query_seconds": query_secs,
                    "run_seconds": total}
            with open(a.json_out, "w") as fh:
                json.dump({"meta": meta, "queries": records}, fh, indent=1, default=str)
            print(f"wrote {a.json_out}")
        if a.hold:
            print(f"holding: Loki {loki.base}, shardlog {shardlog.base}, work dir {work}; Ctrl-C to stop", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0 if all(r["verdict"] == "agree" for r in records) else 1
    except RuntimeError as e:
        print(f"loki_diff: {e}", file=sys.stderr)
        return 2
    finally:
        for s in servers:
            s.stop()
        if a.keep or a.hold:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(records, show_unsupported):
    cats = collections.OrderedDict()
    for r in records:
        c = cats.setdefault(r["category"], collections.Counter())
        c["total"] += 1
        c[r["verdict"]] += 1
        if r.get("order_note"):
            c["order_differs"] += 1
        if r["loki"]["status"] != 200:
            c["loki_refused"] += 1
        elif is_empty(r["loki"]["body"]):
            c["loki_empty"] += 1

    bad = [r for r in records if r["verdict"] == "disagree"]
    if bad:
        print(f"\n=== disagreements ({len(bad)}) ===")
        for r in bad:
            print(f"\n[{r['id']}] {Q(r['category'], r['path'], r['params'], r['headers']).text()}")
            print(f"  difference: {r['diff']}")
            print(f"  loki     {r['loki']['status']}: {abridge(r['loki']['body'])}")
            print(f"  shardlog {r['shardlog']['status']}: {abridge(r['shardlog']['body'])}")
    uns = [r for r in records if r["verdict"] == "unsupported"]
    if uns and show_unsupported:
        print(f"\n=== not supported by shardlog ({len(uns)}) ===")
        for r in uns:
            print(f"[{r['id']}] {Q(r['category'], r['path'], r['params'], r['headers']).text()}")
    refused = [r for r in records if r["loki"]["status"] != 200 and not r["expect_error"]]
    if refused:
        print(f"\n=== Loki refused these (fix the query list, or mark them expect_error) ({len(refused)}) ===")
        for r in refused:
            print(f"[{r['id']}] {Q(r['category'], r['path'], r['params'], r['headers']).text()}")
            print(f"  loki {r['loki']['status']}: {abridge(r['loki']['body'], 240)}")
    accepted = [r for r in records if r["loki"]["status"] == 200 and r["expect_error"]]
    if accepted:
        print(f"\n=== Loki accepted these queries expected to fail ({len(accepted)}) ===")
        for r in accepted:
            print(f"[{r['id']}] {Q(r['category'], r['path'], r['params'], r['headers']).text()}")

    print("\n=== summary ===")
    cols = ["total", "agree", "disagree", "unsupported", "loki_refused", "loki_empty", "order_differs"]
    print(f"{'category':20}" + "".join(f"{c:>14}" for c in cols))
    tot = collections.Counter()
    for cat, c in cats.items():
        tot.update(c)
        print(f"{cat:20}" + "".join(f"{c[k]:>14}" for k in cols))
    print(f"{'ALL':20}" + "".join(f"{tot[k]:>14}" for k in cols))
    print("(loki_refused: Loki's answer was not 200; loki_empty: it was empty; order_differs: agreeing answers\n"
          " whose streams or series come in another order than Loki's, which sorts them by label set;\n"
          " --strict-order makes that a disagreement)")


if __name__ == "__main__":
    sys.exit(main())
