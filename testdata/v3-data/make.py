# Builds a small data dir with the current binary: 30 lines from each loghub file, each with
# a trace_id as structured metadata (three lines per trace), spread over three days (so
# several partitions), two cores. Lines 0..20 of each file are pushed and sealed (SIGTERM);
# the server is started again until compaction has rewritten and bundled those cold
# partitions (templates, the cold level, the metadata index); then lines 20..30 are pushed
# and sealed. The directory so holds both compacted and sealed parts.
import json, os, subprocess, sys, time, urllib.request, glob, signal, socket
BIN, DATA, CORPUS = sys.argv[1], sys.argv[2], sys.argv[3]
base = 1_700_000_000_000_000_000
day = 86_400 * 10**9

def start():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    p = subprocess.Popen([BIN, "serve", "--data-dir", DATA, "--http-addr", f"127.0.0.1:{port}",
         "--syslog-tcp-addr", "", "--syslog-udp-addr", "", "--cores", "2",
         "--discover-service-name=", "--discover-log-levels=false"])
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1).status == 200: break
        except Exception: time.sleep(0.1)
    return p, port

def push(port, first, end):
    for path in sorted(glob.glob(CORPUS + "/*_2k.log")):
        app = os.path.basename(path)[:-len(".log")]
        lines = open(path, encoding="utf-8").read().splitlines()[:30]
        vals = [[str(base + (i % 3) * day + i * 1_000_000), lines[i], {"trace_id": f"{app}-{i // 3:04x}"}]
                for i in range(first, end)]
        body = json.dumps({"streams": [{"stream": {"app": app, "source": "v3"}, "values": vals}]}).encode()
        r = urllib.request.Request(f"http://127.0.0.1:{port}/loki/api/v1/push", body, {"Content-Type": "application/json"})
        assert urllib.request.urlopen(r).status == 204

def compactions(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("shardlog_compactions_total"))

def stop(p):
    p.send_signal(signal.SIGTERM); p.wait(60); print("exit", p.returncode)

p, port = start(); push(port, 0, 20); stop(p)
p, port = start()
last, still = -1, 0
while still < 3:
    time.sleep(5)
    now = compactions(port)
    still = still + 1 if now == last else 0
    last = now
print("compactions", last)
stop(p)
p, port = start(); push(port, 20, 30); stop(p)
