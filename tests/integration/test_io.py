"""Reading and writing client and upstream sockets (src/stream.c: recv when
libuv says a socket is readable, send/sendmsg with MSG_NOSIGNAL while nothing
is queued, the rest in a libuv write request): what the kernel does not take
at once goes out later and in order, a peer that resets mid-transfer ends
only its own exchange (no signal, no busy loop on the error it left), and a
refused connect is reported as such."""
import hashlib
import os
import socket
import struct
import threading
import time

from harness import Client, Keygate, Upstream, check, expect_error, free_port, pattern_sha256, request, timeout

PROXY = ("--require-auth=false",)


def proxy(up, *extra):
    return Keygate(*(PROXY + ("--upstream", up.url) + extra))


def cpu_seconds(pid):
    """User + system CPU time of every thread of pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_idle(kg, what):
    """keygate, with nothing to do, burns no CPU: an error or end a socket
    reported that nobody consumes would wake the loop over and over."""
    t0 = cpu_seconds(kg.proc.pid)
    time.sleep(1.0)
    used = cpu_seconds(kg.proc.pid) - t0
    check(used < 0.3, "keygate used %.2f s of CPU in 1 s with nothing to do after %s" % (used, what))


def reset(sock):
    """Closes sock with a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@timeout(120)
def test_pipelined_downloads_to_a_reader_that_stalls_arrive_whole_and_in_order():
    # more than the socket buffers hold, and a client that reads nothing at
    # first: most of each response waits in keygate's queue (the upstream
    # held back meanwhile) and must go out whole and in order as the client
    # reads
    sizes = [1500000 + i * 7919 for i in range(12)]
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=30) as c:
        c.send(b"".join(c.build("GET", "/download?size=%d&chunked=%d" % (s, i % 2)) for i, s in enumerate(sizes)))
        time.sleep(0.3)  # the stall itself: keygate's writes go partial and queue
        for i, size in enumerate(sizes):
            h = hashlib.sha256()
            n = [0]

            def sink(d):
                h.update(d)
                n[0] += len(d)

            r = c.read_response(sink=sink)
            check(r.status == 200, "response %d: status %d" % (i, r.status))
            check(n[0] == size, "response %d: %d bytes, want %d" % (i, n[0], size))
            check(h.hexdigest() == pattern_sha256(size), "response %d: the bytes differ (out of order or lost)" % i)
        check(len(up.requests()) == len(sizes), "the upstream got %d requests, want %d" % (len(up.requests()), len(sizes)))


@timeout(60)
def test_a_client_resetting_mid_download_ends_only_its_connection():
    size = 64 * 1024 * 1024
    with Upstream() as up, proxy(up) as kg:
        s = socket.create_connection(("127.0.0.1", kg.port), timeout=10)
        s.sendall(b"GET /download?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
        got = 0
        while got < 512 * 1024:
            d = s.recv(65536)
            check(d, "keygate closed after %d bytes of the download" % got)
            got += len(d)
        reset(s)  # keygate is mid-write: its next send or recv meets the reset
        aborted = up.wait_log(lambda l: l.startswith("ABORT"), 10)
        check(aborted, "keygate kept the upstream download going after its client reset the connection")
        check(kg.alive(), "keygate died when a client reset mid-write")
        r = request(kg.port, "GET", "/after-reset")
        check(r.status == 200, "the next request after a client reset: status %d" % r.status)
        check_idle(kg, "a client reset mid-write")


@timeout(60)
def test_an_upstream_resetting_while_taking_a_body_is_a_502_and_ends_only_that_exchange():
    size = 64 * 1024 * 1024
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    took = [0]

    def upstream():
        # reads the head and some of the body, then resets
        conn, _ = srv.accept()
        data = b""
        while len(data) < 256 * 1024:
            d = conn.recv(65536)
            if not d:
                break
            data += d
        took[0] = len(data)
        reset(conn)

    t = threading.Thread(target=upstream, daemon=True)
    t.start()
    try:
        with Keygate(*PROXY, "--upstream", "http://127.0.0.1:%d" % port) as kg, Client(kg.port, timeout=20) as c:
            c.send(c.build("PUT", "/upload", [("Content-Length", str(size))]))

            def send_body():
                block = b"x" * (1 << 20)
                try:
                    for _ in range(size >> 20):
                        c.sock.sendall(block)
                except OSError:
                    pass  # keygate answered and closed: the rest is not wanted

            sender = threading.Thread(target=send_body, daemon=True)
            sender.start()
            r = c.read_response()
            expect_error(r, 502, "upstream closed")
            t.join(10)
            check(took[0] > 0, "the upstream got nothing before its reset")
            check(kg.alive(), "keygate died when the upstream reset mid-write")
            check(request(kg.port, "GET", "/_keygate/health").status == 200, "health after an upstream reset")
            c.close()
            sender.join(15)
            check_idle(kg, "an upstream reset mid-write")
    finally:
        srv.close()


def test_an_upstream_refusing_the_connection_is_a_502_saying_so_every_time():
    dead = free_port()
    with Keygate(*PROXY, "--upstream", "http://127.0.0.1:%d" % dead) as kg:
        for i in range(3):
            r = request(kg.port, "GET", "/refused-%d" % i)
            expect_error(r, 502, "connection refused")
        kg.wait_for_log(r"connect failed: connection refused", 5)
        check_idle(kg, "refused connects")
