#!/usr/bin/env python3
"""Bytes on disk per line and where they go, for the two layouts of the storage target.

The ten loghub files are pushed through the Loki push API (JSON, 500 lines a request), one
stream per file {app="<file prefix, lowercase>"} (as ../shared/tools/peer-storage.py does), into
a fresh `shardlog serve --cores 1`, which is then stopped with SIGTERM (every head is sealed).
Timestamps: --days 0 (dense): line i of every file at base + i ms; --days N: line i at
base + i * N days / 2000, so each file's lines spread over N days (one day partition every
0.3 days of lines). With --compact S the server is started again for S seconds so that
compaction rewrites what it picks, and stopped again. Then `examples/part_bytes` splits the
bytes of <data>/shards (the WAL is excluded) into regions.

  benches/storage-breakdown.py --bin target/release/shardlog [--days 600] [--compact 20]
"""
import argparse, glob, json, os, shutil, signal, socket, subprocess, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = sorted(glob.glob(os.path.join(ROOT, "testdata/loghub/*_2k.log")))
DAY = 86_400 * 10**9

def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start(bin_, data):
    p = port()
    proc = subprocess.Popen([bin_, "serve", "--data-dir", data, "--http-addr", f"127.0.0.1:{p}",
                             "--syslog-tcp-addr", "", "--syslog-udp-addr", "", "--cores", "1"],
                            stdout=subprocess.DEVNULL, stderr=open(data + ".log", "a"))
    for _ in range(600):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{p}/ready", timeout=1).status == 200: return proc, p
        except Exception: time.sleep(0.1)
    raise RuntimeError("server not ready")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/shardlog"))
    ap.add_argument("--days", type=float, default=0)
    ap.add_argument("--compact", type=float, default=0)
    ap.add_argument("--keep")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="breakdown.")
    data = os.path.join(work, "data")
    try:
        proc, p = start(a.bin, data)
        base = 1_700_000_000_000_000_000
        nlines = 0
        for path in CORPUS:
            app = os.path.basename(path).split("_")[0].lower()
            lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
            nlines += len(lines)
            step = int(a.days * DAY / 2000) if a.days else 1_000_000
            for off in range(0, len(lines), 500):
                vals = [[str(base + (off + i) * step), l] for i, l in enumerate(lines[off:off + 500])]
                body = json.dumps({"streams": [{"stream": {"app": app}, "values": vals}]}).encode()
                r = urllib.request.Request(f"http://127.0.0.1:{p}/loki/api/v1/push", body, {"Content-Type": "application/json"})
                assert urllib.request.urlopen(r).status in (200, 204)
        proc.send_signal(signal.SIGTERM); proc.wait(120)
        if a.compact:
            proc, p = start(a.bin, data)
            time.sleep(a.compact)
            proc.send_signal(signal.SIGTERM); proc.wait(120)
        raw = b"".join(open(x, "rb").read() for x in CORPUS)
        z3 = len(subprocess.run(["zstd", "-3", "-q", "-c"], input=raw, capture_output=True).stdout)
        ex = os.path.join(os.path.dirname(os.path.dirname(a.bin)), "release/examples/part_bytes")
        if not os.path.exists(ex): ex = os.path.join(os.path.dirname(a.bin), "examples/part_bytes")
        out = subprocess.run([ex, data], capture_output=True, text=True, check=True).stdout
        print(out, end="")
        total = int(out.split("total")[1].split()[0])
        print(f"lines {nlines}  zstd -3 {z3}  total {total}  {total / nlines:.2f} B/line  {total / z3:.3f}x zstd -3")
        if a.keep: shutil.copytree(data, a.keep)
    finally:
        shutil.rmtree(work, ignore_errors=True)

main()
