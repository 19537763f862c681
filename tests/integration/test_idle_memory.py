"""What an idle keep-alive client connection costs (issue 12): its request
buffers are given back once more recently busy connections have gone idle,
and such a connection serves its next requests as before."""
import resource
import selectors
import socket
import threading
import time

from harness import ASAN, Client, Keygate, check, note, skip, timeout

PROXY = ("--require-auth=false",)
# connections beyond the ones a worker lets keep their buffers (KG_PARKED_MAX, 128)
MANY = 400


class FastUpstream:
    """An upstream that answers every GET at once, in one write: thousands
    of requests in a few seconds (the recording upstream takes 40 ms per
    keep-alive request: it writes head and body separately, and Nagle waits
    for the delayed ACK). The body is "PATH LENGTH-OF-X-Big\\n"."""

    def __enter__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(128)
        self.ls.setblocking(False)
        self.url = "http://127.0.0.1:%d" % self.ls.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join(5)
        self.ls.close()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.ls, selectors.EVENT_READ, None)
        conns = []
        while not self.stop:
            for key, _ in sel.select(0.05):
                if key.data is None:
                    try:
                        s, _ = self.ls.accept()
                    except BlockingIOError:
                        continue
                    s.setblocking(True)
                    s.settimeout(5)
                    conns.append(s)
                    sel.register(s, selectors.EVENT_READ, bytearray())
                    continue
                s, buf = key.fileobj, key.data
                try:
                    d = s.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    sel.unregister(s)
                    s.close()
                    continue
                buf += d
                while b"\r\n\r\n" in buf:
                    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
                    del buf[:len(head) + 4]
                    lines = head.decode("latin-1").split("\r\n")
                    path = lines[0].split(" ")[1]
                    big = 0
                    for l in lines[1:]:
                        k, _, v = l.partition(":")
                        if k.strip().lower() == "x-big":
                            big = len(v.strip())
                    body = ("%s %d\n" % (path, big)).encode()
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        for s in conns:
            s.close()


def raise_fd_limit(n):
    """This process holds n client sockets; keygate, started after, inherits
    the limit and holds as many plus its upstream side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * n + 512
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            skip("RLIMIT_NOFILE hard limit %d is below the %d descriptors this test needs" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def settled_rss_kib(pid):
    """VmRSS once two readings 0.1 s apart agree (bounded: 5 s)."""
    last = rss_kib(pid)
    for _ in range(50):
        time.sleep(0.1)
        now = rss_kib(pid)
        if now == last:
            break
        last = now
    return last


def open_after_one_request(port, n, path):
    conns = []
    try:
        for i in range(n):
            c = Client(port, timeout=10)
            conns.append(c)
            r = c.request("GET", "%s/%d" % (path, i))
            check(r.status == 200, "connection %d: first request got %d" % (i, r.status))
    except BaseException:
        for c in conns:
            c.close()
        raise
    return conns


@timeout(120)
def test_idle_keepalive_connections_cost_under_4k_each():
    if ASAN:
        skip("ASan's shadow memory and quarantine make RSS per connection meaningless")
    n = 2000
    raise_fd_limit(n)
    with FastUpstream() as up, Keygate(*(PROXY + ("--upstream", up.url))) as kg:
        # what the first requests of a process allocate (the upstream pool,
        # the log buffer, libc's arenas) is not what a connection costs
        for c in open_after_one_request(kg.port, 32, "/warm"):
            c.close()
        before = settled_rss_kib(kg.proc.pid)
        conns = open_after_one_request(kg.port, n, "/idle")
        try:
            after = settled_rss_kib(kg.proc.pid)
            per_conn = (after - before) * 1024 / n
            note("%.0f bytes of RSS per idle keep-alive connection (%d connections)" % (per_conn, n))
            check(per_conn < 4096,
                  "RSS grew %d KiB over %d idle keep-alive connections: %.0f bytes each (ceiling 4096; "
                  "an idle connection should cost its struct, not its request buffers)"
                  % (after - before, n, per_conn))
            for i, c in enumerate(conns[::100]):
                r = c.request("GET", "/again/%d" % i)
                check(r.status == 200, "a second request on idle connection %d got %d" % (i * 100, r.status))
        finally:
            for c in conns:
                c.close()


@timeout(120)
def test_connections_whose_buffers_were_released_serve_large_and_pipelined_requests():
    raise_fd_limit(MANY)
    with FastUpstream() as up, Keygate(*(PROXY + ("--upstream", up.url))) as kg:
        conns = open_after_one_request(kg.port, MANY, "/first")
        try:
            # the first connections gave their buffers back when the later
            # ones went idle: their next requests allocate them again, a
            # large head (12 KB of headers) and two pipelined requests
            big = "b" * 12000
            for i, c in enumerate(conns):
                c.send(c.build("GET", "/big/%d" % i, [("X-Big", big)]) + c.build("GET", "/next/%d" % i))
                r1 = c.read_response()
                r2 = c.read_response()
                check(r1.status == 200 and r2.status == 200,
                      "connection %d: pipelined requests after idling got %d and %d" % (i, r1.status, r2.status))
                want = (b"/big/%d 12000\n" % i, b"/next/%d 0\n" % i)
                check((r1.body, r2.body) == want,
                      "connection %d: the upstream saw %r then %r, not %r" % (i, r1.body, r2.body, want))
        finally:
            for c in conns:
                c.close()


@timeout(60)
def test_idle_timeout_closes_connections_whose_buffers_were_released():
    raise_fd_limit(MANY)
    with FastUpstream() as up, Keygate(*(PROXY + ("--upstream", up.url, "--limits-idle-timeout", "1s"))) as kg:
        start = time.monotonic()
        conns = open_after_one_request(kg.port, MANY, "/short")
        try:
            # the last connection went idle last: all are closed within the
            # timeout after it, give or take the event loop's scheduling
            still_open = [i for i, c in enumerate(conns) if not c.is_closed(timeout=max(0.1, start + 30 - time.monotonic()))]
            check(not still_open, "%d of %d idle connections still open after limits.idle_timeout=1s (first: %d)"
                  % (len(still_open), MANY, still_open[0] if still_open else -1))
        finally:
            for c in conns:
                c.close()
