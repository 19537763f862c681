"""Request limits and request validation: 431, 414, 413, 408, idle close,
max connections, ambiguous headers, garbage."""
import socket
import time

from harness import Client, ConnClosed, Failure, Keygate, Upstream, check, expect_error, request

PROXY = ("--require-auth=false",)


def proxy(up, *extra, **kw):
    return Keygate(*(PROXY + ("--upstream", up.url) + extra), **kw)


def headers(n_total, prefix="X-H"):
    """n_total header lines counting the Host line the client adds."""
    return [("%s-%d" % (prefix, i), "v%d" % i) for i in range(n_total - 1)]


def check_not_proxied(up, marker):
    check(not up.wait_request(lambda m, t: marker in t, timeout=0.1),
          "the rejected request reached the upstream")


def test_header_bytes_over_default_16k_is_431():
    with Upstream() as up, proxy(up) as kg:
        r = request(kg.port, "GET", "/big-one", [("X-Big", "a" * 20000)])
        expect_error(r, 431)
        r = request(kg.port, "GET", "/big-many", [("X-Big-%d" % i, "b" * 1000) for i in range(20)])
        expect_error(r, 431)
        check_not_proxied(up, "/big-")
        r = request(kg.port, "GET", "/fits", [("X-Big", "c" * 12000)])
        check(r.status == 200, "12 KB of headers (under 16 KiB) got %d" % r.status)


def test_header_count_over_default_100_is_431():
    with Upstream() as up, proxy(up) as kg:
        r = request(kg.port, "GET", "/many", headers(120))
        expect_error(r, 431)
        check_not_proxied(up, "/many")
        r = request(kg.port, "GET", "/ninety", headers(90))
        check(r.status == 200, "90 headers (under 100) got %d" % r.status)


def test_max_headers_flag_10_rejects_11_headers():
    with Upstream() as up, proxy(up, "--limits-max-headers", "10") as kg:
        r = request(kg.port, "GET", "/eleven", headers(11))
        expect_error(r, 431)
        r = request(kg.port, "GET", "/ten", headers(10))
        check(r.status == 200, "10 headers with --limits-max-headers 10 got %d" % r.status)


def test_url_over_default_8k_is_414():
    with Upstream() as up, proxy(up) as kg:
        r = request(kg.port, "GET", "/long?" + "q" * 9000)
        expect_error(r, 414)
        check_not_proxied(up, "/long")
        r = request(kg.port, "GET", "/shorter?" + "q" * 7000)
        check(r.status == 200, "a 7000-byte URL (under 8 KiB) got %d" % r.status)


def test_keygate_endpoint_body_over_1mib_is_413():
    with Keygate() as kg, Client(kg.port, timeout=10) as c:
        c.send(c.build("POST", "/_keygate/check", [("Content-Length", "2000000"),
                                                    ("X-Original-URI", "/x"),
                                                    ("X-Original-Method", "GET")]))
        # keygate may answer before the body; if it waits for the body, send it
        if not c.wait_readable(1.0):
            try:
                c.send(b"z" * 2000000)
            except OSError:
                pass
        try:
            r = c.read_response("POST")
        except ConnClosed:
            raise Failure("connection closed without a response to a 2 MB body")
        expect_error(r, 413)


def test_header_read_timeout_is_408():
    with Keygate("--limits-header-timeout", "500ms") as kg, Client(kg.port, timeout=5) as c:
        c.send(b"GET /_keygate/health HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        try:
            r = c.read_response()
        except ConnClosed:
            raise Failure("connection closed without a 408 after an incomplete request head")
        except OSError as e:
            raise Failure("no 408 within 5 s of an incomplete request head (%s)" % e)
        check(r.status == 408, "incomplete request head got %d" % r.status)
        check(r.raw_head.startswith(b"HTTP/1.1 408"), "status line %r" % r.raw_head[:40])
        check(time.monotonic() - t0 >= 0.3, "408 came before the 500ms timeout")
        check(c.is_closed(5), "connection not closed after the 408")


def test_idle_keep_alive_connection_is_closed():
    with Keygate("--limits-idle-timeout", "300ms") as kg, Client(kg.port, timeout=5) as c:
        r = c.request("GET", "/_keygate/health")
        check(r.status == 200, "health %d" % r.status)
        t0 = time.monotonic()
        check(c.is_closed(5), "idle keep-alive connection still open 5 s after the response"
              " with --limits-idle-timeout 300ms")
        check(time.monotonic() - t0 >= 0.2, "idle connection closed before the idle timeout")


def _held_connection(port, deadline):
    """A keep-alive connection with one request answered; retries while the
    server still counts a previous (closing) connection."""
    while True:
        c = Client(port, timeout=5)
        try:
            r = c.request("GET", "/_keygate/health")
        except (ConnClosed, OSError):
            r = None
        if r is not None and r.status == 200:
            return c
        c.close()
        if time.monotonic() > deadline:
            raise Failure("could not open a held connection: %r" % r)
        time.sleep(0.05)


def _third_connection_response(port):
    c = Client(port, timeout=5)
    try:
        # keygate may answer at accept time; only send once it has not
        if not c.wait_readable(0.5):
            try:
                c.send(c.build("GET", "/_keygate/health", []))
            except OSError:
                pass
        try:
            r = c.read_response()
        except (ConnClosed, OSError) as e:
            raise Failure("connection over the limit got no response (%s), want 503" % e)
        return r, c
    except BaseException:
        c.close()
        raise


def test_max_connections_excess_gets_503_and_close():
    with Keygate("--limits-max-connections", "2") as kg:
        deadline = time.monotonic() + 5
        held = [_held_connection(kg.port, deadline), _held_connection(kg.port, deadline)]
        try:
            r, c = _third_connection_response(kg.port)
            with c:
                expect_error(r, 503)
                check(c.is_closed(5), "connection over the limit not closed after the 503")
            # the held ones still work
            for h in held:
                check(h.request("GET", "/_keygate/health").status == 200, "held connection broken")
            # a freed slot is usable again
            held.pop().close()
            held.append(_held_connection(kg.port, time.monotonic() + 5))
        finally:
            for h in held:
                h.close()


def test_duplicate_authorization_is_400():
    with Upstream() as up, proxy(up) as kg:
        r = request(kg.port, "GET", "/dup-auth", [("Authorization", "Bearer a"), ("Authorization", "Bearer b")])
        expect_error(r, 400, "Authorization")
        check_not_proxied(up, "/dup-auth")


def test_duplicate_content_length_is_400():
    with Upstream() as up, proxy(up) as kg:
        r = request(kg.port, "POST", "/dup-cl", [("Content-Length", "3"), ("Content-Length", "3")], b"abc")
        expect_error(r, 400, "Content-Length")
        check_not_proxied(up, "/dup-cl")


def test_duplicate_host_is_400():
    with Upstream() as up, proxy(up) as kg:
        r = request(kg.port, "GET", "/dup-host", [("Host", "a.test"), ("Host", "b.test")], host=False)
        expect_error(r, 400, "Host")
        check_not_proxied(up, "/dup-host")


def test_content_length_and_transfer_encoding_is_400():
    with Upstream() as up, proxy(up) as kg, Client(kg.port) as c:
        c.send(c.build("POST", "/cl-te", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")])
               + b"5\r\nhello\r\n0\r\n\r\n")
        expect_error(c.read_response("POST"), 400, "Transfer-Encoding")
        check_not_proxied(up, "/cl-te")


def test_garbage_request_line_is_400():
    with Upstream() as up, proxy(up) as kg:
        for garbage in (b"HELLO\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
                        b"GET /x HTTP/9.Z\r\nHost: a\r\n\r\n"):
            with Client(kg.port, timeout=5) as c:
                c.send(garbage)
                try:
                    r = c.read_response()
                except ConnClosed:
                    raise Failure("garbage %r: connection closed without a 400" % garbage[:20])
                expect_error(r, 400)
        check(request(kg.port, "GET", "/_keygate/health").status == 200, "health after garbage")


# ------------------------------------------------ clients and upstreams that stall

def test_a_stalled_request_body_is_408_for_keygates_own_endpoint():
    with Keygate("--restricted", "--token-encryption-key", "k", "--limits-body-timeout", "300ms") as kg, \
            Client(kg.port, timeout=10) as c:
        c.send(b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"role\":")
        r = c.read_response("POST")
        expect_error(r, 408, "timed out reading the request body")
        check(c.is_closed(5), "the connection is closed after the 408")


def test_a_stalled_upload_is_408_and_never_completes_upstream():
    with Upstream() as up, proxy(up, "--limits-body-timeout", "300ms") as kg, Client(kg.port, timeout=10) as c:
        c.send(b"PUT /stalled-upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000)
        r = c.read_response("PUT")
        expect_error(r, 408, "timed out reading the request body")
        check(c.is_closed(5), "the connection is closed after the 408")


def test_a_slow_upload_that_keeps_sending_outlives_the_upstream_timeout():
    # the upstream clock starts when the whole request is out, not when its head is
    with Upstream() as up, proxy(up, "--proxy-upstream-timeout", "400ms", "--limits-body-timeout", "5s") as kg, \
            Client(kg.port, timeout=10) as c:
        parts = [b"x" * 1000] * 4
        c.send(b"PUT /slow-upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n")
        for p in parts:
            time.sleep(0.25)  # the client's pace: 1 s in all, well past the 400 ms upstream timeout
            c.send(p)
        r = c.read_response("PUT")
        check(r.status == 200, "a slow but steady upload got %d %r" % (r.status, r.body[:200]))
        check(r.json()["body_len"] == 4000, "the upstream got the whole body: %r" % r.json()["body_len"])


def test_an_upstream_silent_mid_response_is_cut_after_the_upstream_timeout():
    with Upstream() as up, proxy(up, "--proxy-upstream-timeout", "300ms") as kg, Client(kg.port, timeout=10) as c:
        mark = kg.log_mark()
        c.send(c.build("GET", "/stall?after=100&ms=5000&size=200"))
        _, status, _, _, _ = c.read_head()
        check(status == 200, "the response began: %d" % status)
        got = c.read_exact(100)
        check(len(got) == 100, "the first 100 bytes arrived")
        check(c.is_closed(5), "keygate closes the connection instead of waiting 5 s for the upstream")
        kg.wait_for_log(r"upstream fell silent in the middle of the response", since=mark)


def test_a_client_that_stops_reading_is_closed_after_the_send_timeout():
    size = 64 * 1024 * 1024
    with Upstream() as up, proxy(up, "--limits-send-timeout", "300ms") as kg, Client(kg.port, timeout=10) as c:
        c.send(c.build("GET", "/download?size=%d" % size))
        # the client reads nothing; keygate gives up and closes its upstream side too
        deadline = time.monotonic() + 10
        while not [l for l in up.log_lines() if l.startswith("ABORT")]:
            check(time.monotonic() < deadline, "keygate kept the stalled download going for 10 s")
            time.sleep(0.05)
        total = 0
        try:
            while True:
                data = c.sock.recv(1 << 20)
                if not data:
                    break
                total += len(data)
        except ConnectionResetError:
            pass
        check(total < size, "the client got %d of %d bytes: the download was cut" % (total, size))


def test_an_upstream_connect_that_never_completes_is_a_504_after_the_connect_timeout():
    # a listener whose accept queue is full: the kernel drops further SYNs, so
    # keygate's connect neither succeeds nor fails on its own
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                f = socket.socket()
                fillers.append(f)
                f.settimeout(0.3)
                try:
                    f.connect(("127.0.0.1", port))
                except socket.timeout:
                    break
            else:
                raise Failure("could not fill the accept queue of a listen(0) socket")
            with Keygate(*PROXY, "--upstream", "http://127.0.0.1:%d" % port, "--proxy-connect-timeout", "300ms") as kg:
                t0 = time.monotonic()
                r = request(kg.port, "GET", "/never-connected", timeout=10)
                took = time.monotonic() - t0
                expect_error(r, 504, "proxy.connect_timeout")
                check(0.3 <= took < 2.5, "the 504 came after %.2f s with a 300ms connect timeout" % took)
                kg.wait_for_log(r"upstream connect timed out", 5)
        finally:
            for f in fillers:
                f.close()


def test_a_refused_client_that_keeps_sending_is_cut_off_after_the_lingering_close():
    # after a refusal keygate sends its FIN and reads and drops what the client
    # still sends for 2 s (so no reset destroys the response), then closes for good
    with Keygate("--restricted", "--token-encryption-key", "k") as kg, Client(kg.port, timeout=10) as c:
        c.send(b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
        r = c.read_response("POST")
        expect_error(r, 413)
        t0 = time.monotonic()
        cut = None
        while time.monotonic() - t0 < 8:
            try:
                c.sock.sendall(b"x" * 1024)
            except (BrokenPipeError, ConnectionResetError):
                cut = time.monotonic() - t0
                break
            time.sleep(0.05)
        check(cut is not None, "keygate still took the refused client's bytes 8 s after its 413")
        check(1.5 <= cut < 5, "the lingering close ended %.2f s after the 413, not about 2 s" % cut)


def test_a_client_that_said_close_is_closed_at_once_after_its_whole_response():
    # Connection: close and the whole request read: nothing can follow for a
    # reset to answer, so keygate closes right after its FIN (no 2 s lingering
    # read). A client that breaks its word and sends more is reset at once;
    # the response it asked for arrived whole before that.
    with Upstream() as up, Keygate("--upstream", up.url, "--require-auth=false") as kg, \
            Client(kg.port, timeout=10) as c:
        c.send(b"GET /closing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = c.read_response("GET")
        check(r.status == 200, "the proxied GET: %d" % r.status)
        check(c.sock.recv(1) == b"", "no EOF after a Connection: close response")
        t0 = time.monotonic()
        cut = None
        while time.monotonic() - t0 < 5:
            try:
                c.sock.sendall(b"x" * 1024)
            except (BrokenPipeError, ConnectionResetError):
                cut = time.monotonic() - t0
                break
            time.sleep(0.02)
        check(cut is not None and cut < 1.0,
              "keygate still held the connection %s after a Connection: close response" %
              ("5 s" if cut is None else "%.2f s" % cut))
        check([q[2] for q in up.requests()] == ["/closing"], "the upstream got %r" % up.requests())
