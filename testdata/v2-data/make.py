# Builds a small data dir with the current binary: 30 lines from each loghub file, each with
# a trace_id as structured metadata (three lines per trace), spread over three days (so
# several partitions), two cores, then SIGTERM (seals everything).
import json, os, subprocess, sys, time, urllib.request, glob, signal, socket
BIN, DATA = sys.argv[1], sys.argv[2]
s=socket.socket(); s.bind(("127.0.0.1",0)); port=s.getsockname()[1]; s.close()
p = subprocess.Popen([BIN, "serve", "--data-dir", DATA, "--http-addr", f"127.0.0.1:{port}",
     "--syslog-tcp-addr", "", "--syslog-udp-addr", "", "--cores", "2",
     "--discover-service-name=", "--discover-log-levels=false"])
for _ in range(300):
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1).status == 200: break
    except Exception: time.sleep(0.1)
base = 1_700_000_000_000_000_000
day = 86_400 * 10**9
for path in sorted(glob.glob(sys.argv[3] + "/*_2k.log")):
    app = os.path.basename(path)[:-len(".log")]
    lines = open(path, encoding="utf-8").read().splitlines()[:30]
    vals = [[str(base + (i % 3) * day + i * 1_000_000), l, {"trace_id": f"{app}-{i // 3:04x}"}] for i, l in enumerate(lines)]
    body = json.dumps({"streams": [{"stream": {"app": app, "source": "v2"}, "values": vals}]}).encode()
    r = urllib.request.Request(f"http://127.0.0.1:{port}/loki/api/v1/push", body, {"Content-Type": "application/json"})
    assert urllib.request.urlopen(r).status == 204
p.send_signal(signal.SIGTERM); p.wait(60)
print("exit", p.returncode)
