"""More of the core: client addresses behind trusted proxies, pipelining,
Expect: 100-continue, and authentication before a WebSocket tunnel."""
import re

from harness import Client, Keygate, Upstream, check, request

PROXY = ("--require-auth=false",)


def test_trusted_proxy_xff_entry_is_the_logged_client():
    with Upstream() as up, Keygate(*PROXY, "--upstream", up.url, "--trusted-proxies", "127.0.0.0/8") as kg:
        r = request(kg.port, "GET", "/who", headers=[("X-Forwarded-For", "203.0.113.7, 127.0.0.5")])
        check(r.status == 200, "status %d" % r.status)
        line = kg.wait_for_log(r'"GET /who"')
        check(line and line.split(" ")[1] == "203.0.113.7",
              "with 127/8 trusted the client is the right-most untrusted XFF entry; log: %r" % line)
        # upstream still sees the whole chain plus the socket peer
        xff = [v for k, v in r.json()["headers"] if k.lower() == "x-forwarded-for"]
        check(xff == ["203.0.113.7, 127.0.0.5, 127.0.0.1"], "upstream X-Forwarded-For %r" % xff)


def test_untrusted_peer_cannot_choose_its_logged_address():
    with Upstream() as up, Keygate(*PROXY, "--upstream", up.url) as kg:
        r = request(kg.port, "GET", "/who", headers=[("X-Forwarded-For", "203.0.113.7")])
        check(r.status == 200, "status %d" % r.status)
        line = kg.wait_for_log(r'"GET /who"')
        check(line and line.split(" ")[1] == "127.0.0.1", "an untrusted peer's XFF must be ignored; log: %r" % line)


def test_pipelined_requests_are_answered_in_order():
    with Upstream() as up, Keygate(*PROXY, "--upstream", up.url) as kg, Client(kg.port) as c:
        c.send(c.build("GET", "/p1") + c.build("GET", "/_keygate/health") + c.build("POST", "/p3", body=b"abc"))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        check(r1.status == 200 and r1.json()["path"] == "/p1", "first: %r" % r1)
        check(r2.status == 200 and r2.json().get("status") == "ok", "second (keygate's own): %r" % r2)
        check(r3.status == 200 and r3.json()["path"] == "/p3" and r3.json()["body_len"] == 3, "third: %r" % r3)


def test_expect_100_continue_is_relayed():
    with Upstream() as up, Keygate(*PROXY, "--upstream", up.url) as kg, Client(kg.port) as c:
        c.send(c.build("PUT", "/put", headers=[("Expect", "100-continue"), ("Content-Length", "5")], body=None))
        interim = c.read_response(skip_1xx=False)
        check(interim.status == 100, "expected 100 Continue first, got %d" % interim.status)
        c.send(b"hello")
        r = c.read_response()
        check(r.status == 200 and r.json()["body_len"] == 5, "final: %r" % r)


def test_upgrade_needs_authentication_first():
    with Upstream() as up, Keygate("--require-auth", "--upstream", up.url) as kg, Client(kg.port) as c:
        c.send(c.build("GET", "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                      ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                      ("Sec-WebSocket-Version", "13")]))
        r = c.read_response()
        check(r.status == 401, "an unauthenticated upgrade must be refused, got %d" % r.status)
        check(not [q for q in up.requests() if q[2].startswith("/ws")], "the upstream must never see it")


def test_401_keeps_the_connection_alive():
    with Upstream() as up, Keygate("--require-auth", "--api-keys=false", "--upstream", up.url) as kg, Client(kg.port) as c:
        for i in range(3):
            r = c.request("GET", "/private/%d" % i)
            check(r.status == 401, "request %d: %d" % (i, r.status))
            check((r.header("Connection") or "").lower() != "close", "a 401 without a body keeps the connection")
        check(re.search(r"Bearer", r.header("WWW-Authenticate") or ""), "401 names the scheme")


def test_half_closed_client_still_gets_its_response():
    import socket as _s
    with Upstream() as up, Keygate(*PROXY, "--upstream", up.url) as kg, Client(kg.port) as c:
        c.send(c.build("GET", "/slow?ms=200"))
        c.sock.shutdown(_s.SHUT_WR)  # like `nc -N`: request sent, then EOF
        r = c.read_response()
        check(r.status == 200 and r.json()["path"] == "/slow?ms=200", "response after half-close: %r" % r)
        check(c.is_closed(5.0), "keygate closes after answering a half-closed client")


def test_pipelined_request_read_ahead_while_upstream_is_slow():
    with Upstream() as up, Keygate(*PROXY, "--upstream", up.url) as kg, Client(kg.port) as c:
        c.send(c.build("GET", "/slow?ms=300"))
        c.send(c.build("GET", "/second"))  # arrives while the first is in flight
        r1, r2 = c.read_response(), c.read_response()
        check(r1.json()["path"] == "/slow?ms=300" and r2.json()["path"] == "/second", "order: %r %r" % (r1, r2))
