#!/usr/bin/env python3
"""Syscalls per request and top functions of a proxy under load, for make bench.

    bench/profile.py --url URL --pids "PID..." [--header H]... [--record PID]
                     [--duration S] [--connections N] [--top N]

Runs wrk (-t2) against URL for --duration seconds while `perf stat` counts
the system calls the given processes (every thread) enter, by tracepoint,
and, with --record, while `perf record` samples that one process's CPU
(-F 1999, user and kernel). Prints one JSON object: requests, syscalls per
request (total and by call), context switches per request, the kernel's share of the samples and the top
user-space functions with their share of all the process's samples.
perf attaches to running processes and is stopped with SIGINT once wrk is
done; every wait is bounded. Needs perf (Debian: linux-perf) with access to
the syscall tracepoints (root, or kernel.perf_event_paranoid <= -1).
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

# the calls a proxy's request path makes; raw_syscalls:sys_enter counts all
CALLS = ["read", "write", "getsockopt", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
         "epoll_wait", "epoll_pwait", "epoll_ctl", "accept4", "close", "io_uring_enter"]


def available_events():
    """The syscall tracepoints this kernel has (a missing one makes perf stat fail)."""
    out = subprocess.run(["perf", "list", "--raw-dump", "tracepoint"], capture_output=True, text=True, timeout=60)
    have = set(out.stdout.split())
    return [c for c in CALLS if "syscalls:sys_enter_" + c in have]


def switches(pids):
    """Context switches (voluntary + not) so far of every thread of the given processes."""
    n = 0
    for pid in pids:
        for task in os.listdir("/proc/%s/task" % pid):
            with open("/proc/%s/task/%s/status" % (pid, task)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
    return n


def stop(proc, what):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise SystemExit("profile: %s did not stop on SIGINT" % what)


def top_functions(data, binary, n):
    """(kernel share, [(share, symbol)]) of a perf.data file: shares of all samples."""
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                        "--percent-limit", "0", "-q"], capture_output=True, text=True, timeout=300)
    kernel, user = 0.0, []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        share, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        if kind == "k":
            kernel += share
        else:
            where = "" if dso == os.path.basename(binary) else " (%s)" % dso
            user.append((share, sym + where))
    user.sort(reverse=True)
    return kernel, user[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pids", required=True, help="processes whose syscalls are counted")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--record", type=int, help="sample this process's CPU with perf record")
    ap.add_argument("--binary", default="keygate", help="the recorded process's executable (names its own symbols)")
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    if not shutil.which("perf"):
        print(json.dumps({"error": "perf not found (Debian package linux-perf)"}))
        return
    pids = ",".join(a.pids.split())
    events = ["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + c for c in available_events()]
    tmp = tempfile.mkdtemp(prefix="keygate-profile-")
    try:
        stat_out = os.path.join(tmp, "stat.csv")
        stat = subprocess.Popen(["perf", "stat", "-x", ";", "-o", stat_out, "-e", ",".join(events), "-p", pids],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        rec = None
        if a.record:
            data = os.path.join(tmp, "perf.data")
            rec = subprocess.Popen(["perf", "record", "-F", "1999", "-o", data, "-p", str(a.record)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cmd = ["wrk", "-t2", "-c%d" % a.connections, "-d%ds" % a.duration]
        for h in a.header:
            cmd += ["-H", h]
        cs0 = switches(a.pids.split())
        w = subprocess.run(cmd + [a.url], capture_output=True, text=True, timeout=a.duration + 60)
        cs1 = switches(a.pids.split())
        stop(stat, "perf stat")
        if rec:
            stop(rec, "perf record")
        m = re.search(r"(\d+) requests in", w.stdout)
        if w.returncode != 0 or not m:
            raise SystemExit("profile: wrk failed: %s %s" % (w.stdout, w.stderr))
        reqs = int(m.group(1))
        counts = {}
        for line in open(stat_out):
            f = line.strip().split(";")
            if len(f) < 3 or not f[0].strip().isdigit():
                continue
            counts[f[2].replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "all")] = int(f[0])
        res = {"requests": reqs,
               "syscalls_per_request": round(counts.get("all", 0) / reqs, 2),
               "switches_per_request": round((cs1 - cs0) / reqs, 2),
               "by_call": {k: round(v / reqs, 3) for k, v in counts.items() if k != "all" and v}}
        if rec:
            kernel, top = top_functions(data, a.binary, a.top)
            res["kernel_share"] = round(kernel, 1)
            res["top"] = [[round(s, 2), sym] for s, sym in top]
        print(json.dumps(res))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
