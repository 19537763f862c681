#!/usr/bin/env python3
"""Memory per client connection of a proxy: RSS growth / connections.

  idle_conns.py MODE --port PORT --pid PID [--n N] [--blackhole PORT] [--tls]

MODE:
  idle      each connection sends one GET, reads its response, then stays
            open (kept alive, idle)
  inflight  each connection sends one GET that the proxy forwards to a
            black-hole upstream (run here, on --blackhole) that reads the
            request and never answers: the proxy holds the client and the
            upstream connection, waiting for a response
  partial   each connection sends half a request head and stops

--tls: every connection (warm-up ones too) is TLS 1.3, the certificate not
verified; idle is the only mode that supports it.

PID is the process whose VmRSS is read (nginx: the worker). Before
measuring, 32 connections make one request each and close, so what the
first request of a process allocates is not charged to the connections.
Prints one line: "rss_before_kib rss_after_kib connections_open".
Every wait is bounded; exits non-zero when the proxy misbehaves."""
import argparse
import resource
import selectors
import socket
import ssl
import sys
import threading
import time

REQ = b"GET /bytes/abc HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"
HALF = b"GET /bytes/abc HTTP/1.1\r\nHost: localhost\r\nUser-"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def settled_rss(pid):
    """RSS once it has stopped moving (the proxy may still be finishing
    work on the last connections): bounded to 5 s."""
    last = rss_kib(pid)
    for _ in range(50):
        time.sleep(0.1)
        now = rss_kib(pid)
        if now == last:
            return now
        last = now
    return last


def read_response(s):
    buf = b""
    deadline = time.monotonic() + 10
    while True:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            head = buf[:i].decode("latin-1")
            cl = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    cl = int(v)
            if len(buf) >= i + 4 + cl:
                status = int(head.split(" ", 2)[1])
                return status, buf[i + 4 + cl:]
        if time.monotonic() > deadline:
            raise RuntimeError("no complete response within 10 s")
        d = s.recv(65536)
        if not d:
            raise RuntimeError("the proxy closed a connection before answering")
        buf += d


class Blackhole(threading.Thread):
    """An upstream that accepts, reads request heads and never answers."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(4096)
        self.ls.setblocking(False)
        self.heads = 0
        self.conns = []
        self.stop = False

    def run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.ls, selectors.EVENT_READ, None)
        while not self.stop:
            for key, _ in sel.select(0.1):
                if key.data is None:
                    try:
                        while True:
                            s, _ = self.ls.accept()
                            s.setblocking(False)
                            self.conns.append(s)
                            sel.register(s, selectors.EVENT_READ, [b""])
                    except BlockingIOError:
                        pass
                    continue
                try:
                    d = key.fileobj.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    sel.unregister(key.fileobj)
                    continue
                key.data[0] += d
                while b"\r\n\r\n" in key.data[0]:
                    key.data[0] = key.data[0].split(b"\r\n\r\n", 1)[1]
                    self.heads += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("idle", "inflight", "partial"))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--blackhole", type=int)
    ap.add_argument("--tls", action="store_true")
    a = ap.parse_args()
    if a.tls and a.mode != "idle":
        raise RuntimeError("--tls goes with idle only")
    tls = None
    if a.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        tls.minimum_version = ssl.TLSVersion.TLSv1_3

    def connect():
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        return tls.wrap_socket(s, server_hostname="localhost") if tls else s
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * a.n + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

    bh = None
    if a.mode == "inflight":
        bh = Blackhole(a.blackhole)
        bh.start()

    def one_request():
        s = connect()
        s.sendall(REQ)
        status, rest = read_response(s)
        if status != 200 or rest:
            raise RuntimeError("warm-up: status %d" % status)
        s.close()

    if a.mode != "inflight":
        for _ in range(32):
            one_request()
    time.sleep(0.3)
    before = settled_rss(a.pid)

    conns = []
    for i in range(a.n):
        s = connect()
        conns.append(s)
        if a.mode == "idle":
            s.sendall(REQ)
            status, rest = read_response(s)
            if status != 200 or rest:
                raise RuntimeError("connection %d: status %d" % (i, status))
        elif a.mode == "inflight":
            s.sendall(REQ)
        else:
            s.sendall(HALF)
    if bh:
        deadline = time.monotonic() + 30
        while bh.heads < a.n and time.monotonic() < deadline:
            time.sleep(0.05)
        if bh.heads < a.n:
            raise RuntimeError("only %d of %d requests reached the upstream" % (bh.heads, a.n))
    # the proxy may hold what a connection's last request used for a while
    # (keygate: a bounded set of recently busy connections keeps theirs); the
    # figure is what the connections cost once they sit
    time.sleep(1.5)
    after = settled_rss(a.pid)

    # still open, and (idle) still serving
    sel = selectors.DefaultSelector()
    for s in conns:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    closed = len(sel.select(0))
    if a.mode == "idle":
        for s in conns[:: max(1, a.n // 20)]:
            s.setblocking(True)
            s.sendall(REQ)
            status, _ = read_response(s)
            if status != 200:
                raise RuntimeError("a second request on an idle connection: status %d" % status)
    for s in conns:
        s.close()
    if bh:
        bh.stop = True
    print(before, after, a.n - closed)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a bench run reports, it does not trace back
        print("idle_conns: %s" % e, file=sys.stderr)
        sys.exit(1)
