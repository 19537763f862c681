"""HTTP framing rules of the security pass (docs/security.md): Upgrade
requests keygate does not tunnel, what is pipelined behind them, a chunked
body that breaks off, and HTTP versions. Each attack goes to a recording
upstream, which must not see what keygate refused."""
from harness import Client, ConnClosed, Failure, Keygate, Upstream, check, expect_error

PROXY = ("--require-auth=false",)


def proxy(up, *extra):
    return Keygate(*(PROXY + ("--upstream", up.url) + extra))


def headers_of(r):
    return {k.lower(): v for k, v in r.json()["headers"]}


def test_h2c_upgrade_is_proxied_as_a_plain_request_and_the_next_one_is_parsed():
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=10) as c:
        c.send(b"GET /first HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
               b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
        r1 = c.read_response()
        check(r1.status == 200, "the h2c request as a plain GET: %d %r" % (r1.status, r1.body[:200]))
        h = headers_of(r1)
        check("upgrade" not in h and "http2-settings" not in h,
              "the upstream got no Upgrade/HTTP2-Settings: %r" % h)
        check("upgrade" not in (h.get("connection") or "").lower(), "no Connection: upgrade upstream: %r" % h)
        try:
            r2 = c.read_response()
        except ConnClosed:
            raise Failure("the request pipelined behind the h2c upgrade was never answered")
        check(r2.status == 200 and r2.json()["path"] == "/second", "second: %d %r" % (r2.status, r2.body[:200]))
        check([t for _, _, t in up.requests()] == ["/first", "/second"], "upstream saw %r" % up.requests())


def test_request_pipelined_behind_a_refused_websocket_upgrade_is_answered():
    # upstream.py answers a websocket Upgrade anywhere but /ws as an ordinary
    # request (200, no 101): keygate must go back to parsing requests
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=10) as c:
        c.send(b"GET /not-ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
               b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        r1 = c.read_response()
        check(r1.status != 101, "no switch for /not-ws: %d" % r1.status)
        try:
            r2 = c.read_response()
        except ConnClosed:
            raise Failure("the request pipelined behind the refused upgrade was never answered")
        check(r2.status == 200 and r2.json()["path"] == "/after", "after: %d %r" % (r2.status, r2.body[:200]))


def test_websocket_is_still_tunnelled_and_other_protocols_follow_proxy_upgrades():
    with Upstream() as up, proxy(up, "--proxy-upgrades", "h2c") as kg, Client(kg.port, timeout=10) as c:
        # websocket is no longer listed: a plain request, no 101
        c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_response()
        check(r.status != 101, "websocket not in proxy.upgrades must not switch: %d" % r.status)
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=10) as c:
        c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_response(skip_1xx=False)
        check(r.status == 101, "websocket by default: %d" % r.status)


def test_overflowing_chunk_size_is_a_400_not_a_silent_close():
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=10) as c:
        c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\nffffffffffffffffff\r\n")
        try:
            r = c.read_response()
        except ConnClosed:
            raise Failure("an overflowing chunk size closed the connection without an answer")
        expect_error(r, 400)


def test_http_versions_other_than_1_0_and_1_1_get_505_and_garbage_400():
    with Upstream() as up, proxy(up) as kg:
        for version in (b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.0"):
            with Client(kg.port, timeout=10) as c:
                c.send(b"GET /x " + version + b"\r\nHost: a\r\n\r\n")
                expect_error(c.read_response(), 505, "version")
        with Client(kg.port, timeout=10) as c:
            c.send(b"GET /x HTTP/1.Z\r\nHost: a\r\n\r\n")
            expect_error(c.read_response(), 400)
        check(up.requests() == [], "the upstream saw %r" % up.requests())


def test_names_listed_in_a_second_connection_header_are_not_forwarded():
    # found by tests/fuzz/fuzz_head.c: only the last Connection header was read
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=10) as c:
        c.send(b"GET /conn HTTP/1.1\r\nHost: a\r\nConnection: X-Hop-A\r\nConnection: keep-alive, X-Hop-B\r\n"
               b"X-Hop-A: 1\r\nX-Hop-B: 2\r\nX-End: 3\r\n\r\n")
        r = c.read_response()
        check(r.status == 200, "GET /conn: %d %r" % (r.status, r.body[:200]))
        h = headers_of(r)
        check("x-hop-a" not in h and "x-hop-b" not in h, "hop-by-hop headers reached the upstream: %r" % h)
        check(h.get("x-end") == "3", "the end-to-end header is missing upstream: %r" % h)


def test_invalid_header_field_names_are_refused_and_the_upstream_gets_nothing():
    # found by tests/fuzz/fuzz_head.c: llhttp lets ": v" and "A B: v" through,
    # and keygate forwarded them
    with Upstream() as up, proxy(up) as kg:
        for line in (b": v", b"X-A Authorization: Basic eDp5"):
            with Client(kg.port, timeout=10) as c:
                c.send(b"GET /bad-name HTTP/1.1\r\nHost: a\r\n" + line + b"\r\nConnection: close\r\n\r\n")
                expect_error(c.read_response(), 400, "invalid header field name")
        check(up.requests() == [], "the upstream received %r" % up.requests())
