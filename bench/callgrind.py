#!/usr/bin/env python3
"""Instructions per proxied request, counted by callgrind: a figure the noise
of a shared machine does not move, for comparing two builds.

    bench/callgrind.py [BUILD_DIR] [--requests N] [--cases plain,bee,jwt,apikey] [--keep DIR]

For each case it starts the recording upstream (tests/integration/upstream.py)
and `keygate serve --workers 1` under `valgrind --tool=callgrind
--instr-atstart=no` on loopback ports, sends 200 warm-up requests on one
keep-alive connection (the token is opened, pools and buffers are made), then
switches instrumentation on (callgrind_control -i on), sends N more requests
(default 3000) on the same connection, switches it off and stops keygate.
Counted: every thread of keygate during those N requests (the event loop, the
main thread's timers), nothing of the client or the upstream. Printed per
case: instructions per request and keygate's top functions (self cost).
    plain  --upstream only (--require-auth=false), no Authorization header
    bee    --restricted, a keygate token from POST /auth
    jwt    --api-auth-required, an AvalancheGo JWT from auth.newToken
    apikey Elasticsearch on (--admin-password: elastic's), an API key made by
           elastic with POST /_security/api_key granting application keygate
           GET on /bytes/* (as bench/run.sh's case 4e)
    esuser Elasticsearch on, HTTP Basic as elastic (the admin password; its
           bcrypt is paid once in the warm-up, then the credential cache)
Every wait is bounded; processes are stopped on any failure.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Client, Upstream, free_port, request  # noqa: E402

ADMIN_PW = "bench"
AVAX_PW = "Str0ng-Passw0rd-for-keygate-bench!"
WARMUP = 200


def wait_healthy(port, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("keygate exited with %d during start-up" % proc.returncode)
        try:
            if request(port, "GET", "/_keygate/health", timeout=5).status == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("keygate not healthy within %d s" % timeout)


def callgrind_control(*args):
    r = subprocess.run(["callgrind_control"] + list(args), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit("callgrind_control %s: %s %s" % (" ".join(args), r.stdout, r.stderr))


def case_args(case, kg, tmp):
    if case == "plain":
        return ["--require-auth=false"]
    if case in ("bee", "apikey", "esuser"):
        h = subprocess.run([kg, "bcrypt", "--cost", "4", ADMIN_PW], capture_output=True, text=True, timeout=60)
        if case in ("apikey", "esuser"):
            return ["--admin-password", h.stdout.strip()]
        return ["--restricted", "--admin-password", h.stdout.strip(), "--token-encryption-key", "bench-token-key"]
    pw = os.path.join(tmp, "avax-pw")
    with open(pw, "w") as f:
        f.write(AVAX_PW + "\n")
    return ["--api-auth-required", "--api-auth-password-file", pw]


def credential(case, port):
    if case == "plain":
        return []
    if case == "bee":
        import base64
        basic = base64.b64encode((":" + ADMIN_PW).encode()).decode()
        r = request(port, "POST", "/auth", headers=[("Authorization", "Basic " + basic),
                                                     ("Content-Type", "application/json")],
                    body=b'{"role":"consumer","expiry":86400}', timeout=120)
        return [("Authorization", "Bearer " + r.json()["key"])]
    if case == "esuser":
        import base64
        return [("Authorization", "Basic " + base64.b64encode(("elastic:" + ADMIN_PW).encode()).decode())]
    if case == "apikey":
        import base64
        basic = base64.b64encode(("elastic:" + ADMIN_PW).encode()).decode()
        body = json.dumps({"name": "bench", "role_descriptors": {"bench": {"applications": [
            {"application": "keygate", "privileges": ["GET"], "resources": ["/bytes/*"]}]}}}).encode()
        r = request(port, "POST", "/_security/api_key", headers=[("Authorization", "Basic " + basic),
                                                                  ("Content-Type", "application/json")],
                    body=body, timeout=120)
        if r.status != 200:
            raise SystemExit("apikey: POST /_security/api_key answered %d %r" % (r.status, r.body[:200]))
        return [("Authorization", "ApiKey " + r.json()["encoded"])]
    body = json.dumps({"jsonrpc": "2.0", "method": "auth.newToken", "id": 1,
                       "params": {"password": AVAX_PW, "endpoints": ["*"]}}).encode()
    r = request(port, "POST", "/ext/auth", headers=[("Content-Type", "application/json")], body=body, timeout=120)
    return [("Authorization", "Bearer " + r.json()["result"]["token"])]


def annotate(path, n, top):
    r = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                       capture_output=True, text=True, timeout=300)
    total = None
    funcs = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if m and total is not None and ":" in m.group(2) and len(funcs) < top:
            ir = int(m.group(1).replace(",", ""))
            name = m.group(2)
            # "file:function [object]" -> "function (file)"
            fm = re.match(r"(.*?):(\S+)(?: \[(.*)\])?$", name)
            if fm:
                name = "%s (%s)" % (fm.group(2), os.path.basename(fm.group(3) or fm.group(1)))
            funcs.append((ir / n, 100.0 * ir / total, name))
    if total is None:
        raise SystemExit("callgrind_annotate gave no totals for %s:\n%s" % (path, r.stderr))
    return total, funcs


def run_case(case, kg, n, keep, top):
    tmp = tempfile.mkdtemp(prefix="keygate-callgrind-")
    out = os.path.join(keep or tmp, "callgrind.%s.out" % case)
    proc = None
    try:
        with Upstream() as up:
            port = free_port()
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out,
                   kg, "serve", "--listen", "127.0.0.1:%d" % port, "--workers", "1",
                   "--data-dir", os.path.join(tmp, "data"), "--log-access", os.path.join(tmp, "access.log"),
                   "--log-level", "warn", "--upstream", up.url] + case_args(case, kg, tmp)
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=open(os.path.join(tmp, "stderr"), "wb"))
            wait_healthy(port, proc)
            headers = credential(case, port)
            with Client(port, timeout=60) as c:
                for i in range(WARMUP):
                    r = c.request("GET", "/bytes/abc", headers)
                    if r.status != 200:
                        raise SystemExit("%s: warm-up request answered %d %r" % (case, r.status, r.body[:200]))
                callgrind_control("-i", "on", str(proc.pid))
                for i in range(n):
                    r = c.request("GET", "/bytes/abc", headers)
                    if r.status != 200:
                        raise SystemExit("%s: request %d answered %d" % (case, i, r.status))
                callgrind_control("-i", "off", str(proc.pid))
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
            proc = None
        return annotate(out, n, top)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--cases", default="plain,bee,jwt,apikey")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--keep", help="directory to keep the callgrind.CASE.out files in")
    a = ap.parse_args()
    kg = os.path.abspath(os.path.join(a.build, "keygate"))
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
    for case in a.cases.split(","):
        total, funcs = run_case(case, kg, a.requests, a.keep and os.path.abspath(a.keep), a.top)
        print("%s: %d requests, %d instructions, %.0f per request" % (case, a.requests, total, total / a.requests))
        for per, share, name in funcs:
            print("    %8.0f  %5.1f%%  %s" % (per, share, name))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
