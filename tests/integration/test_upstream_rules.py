"""What keygate accepts from the upstream and what it passes on to it.

Response side: an upstream's answer cannot desync the client connection
(bodiless statuses, framing headers listed in Connection, malformed heads,
interim responses), and a response that breaks after its head went out
closes the client connection and is logged once. A raw-socket fake upstream
(RawUpstream) writes exact bytes for these.

Request side: identity headers cannot be forged with `_` for `-`, Forwarded
and X-Forwarded-Proto/-Host are believed only from a trusted proxy, and an
Upgrade keygate does not tunnel reaches the upstream as a plain request.
"""
import re
import socket
import threading
import time

from harness import Client, ConnClosed, Failure, Keygate, Upstream, check, expect_error, request

PROXY = ("--require-auth=false",)
WAIT = 5.0  # every wait in this file is bounded by this


class RawUpstream:
    """A fake upstream on 127.0.0.1 that answers each request with exact bytes.

    respond(target, head) returns the steps of the answer: bytes are written
    as they are, a float is a pause of that many seconds (to split what
    keygate reads into separate segments), CLOSE closes the connection. After
    the steps the connection waits for its next request. Every socket has a
    timeout and everything is closed on exit.
    """

    CLOSE = object()

    def __init__(self, respond):
        self.respond = respond
        self.lock = threading.Lock()
        self.seen = []   # (connection number, method, target, head bytes)
        self.conns = []
        self.threads = []
        self.nconn = 0
        self.is_stopping = False
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port

    def __enter__(self):
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def __exit__(self, *exc):
        self.is_stopping = True
        self.srv.close()
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            try:
                s.close()
            except OSError:
                pass
        for t in list(self.threads):
            t.join(WAIT)
        return False

    def requests(self):
        with self.lock:
            return list(self.seen)

    def _accept(self):
        while not self.is_stopping:
            try:
                s, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(WAIT * 2)
            with self.lock:
                self.nconn += 1
                n = self.nconn
                self.conns.append(s)
            t = threading.Thread(target=self._serve, args=(s, n), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, s, n):
        buf = b""
        try:
            while not self.is_stopping:
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        return
                    buf += data
                    if len(buf) > 1 << 20:
                        return
                head, _, buf = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                need = int(m.group(1)) if m else 0
                while len(buf) < need:
                    data = s.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[need:]
                method, target = head.split(b" ", 2)[:2]
                method, target = method.decode(), target.decode()
                with self.lock:
                    self.seen.append((n, method, target, head))
                for step in self.respond(target, head):
                    if step is RawUpstream.CLOSE:
                        return
                    if isinstance(step, float):
                        time.sleep(step)
                    else:
                        s.sendall(step)
        except OSError:
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass


def ok(body=b"real", extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


FORGED = b"HTTP/1.1 200 OK\r\nX-Forged: 1\r\nContent-Length: 6\r\n\r\nforged"


def proxy(up, *extra):
    return Keygate(*(PROXY + ("--upstream", up.url) + extra))


def check_real(r, what):
    check(r.header("X-Forged") is None and b"forged" not in r.body,
          "%s: the client got the bytes that followed a bodiless response as a response: %r %r"
          % (what, r.raw_head, r.body))
    check(r.status == 200 and r.body == b"real", "%s: expected the upstream's real 200, got %d %r"
          % (what, r.status, r.body))


# ---------------------------------------------------------------- bodiless responses

def test_a_204_with_content_length_cannot_smuggle_a_second_response():
    def respond(target, head):
        if target == "/first":
            return [b"HTTP/1.1 204 No Content\r\nContent-Length: %d\r\n\r\n" % len(FORGED) + FORGED]
        return [ok()]

    with RawUpstream(respond) as up, proxy(up) as kg, Client(kg.port, timeout=WAIT) as c:
        r = c.request("GET", "/first")
        check(r.status == 204, "expected the 204, got %d" % r.status)
        for name in ("Content-Length", "Transfer-Encoding"):
            check(r.header(name) is None, "a 204 reached the client with %s: %r" % (name, r.header(name)))
        check_real(c.request("GET", "/second"), "the request after the 204")
        conns = {t: n for n, _, t, _ in up.requests()}
        check(conns.get("/second") not in (None, conns.get("/first")),
              "the upstream connection that sent bytes after a 204 was reused: %r" % conns)


def test_a_204_whose_announced_body_comes_late_does_not_answer_the_next_request():
    # the announced body arrives in its own segment, after keygate has
    # finished the 204: the connection must not go back to the pool
    def respond(target, head):
        if target == "/first":
            return [b"HTTP/1.1 204 No Content\r\nContent-Length: %d\r\n\r\n" % len(FORGED), 0.3, FORGED]
        return [ok()]

    with RawUpstream(respond) as up, proxy(up) as kg, Client(kg.port, timeout=WAIT) as c:
        r = c.request("GET", "/first")
        check(r.status == 204, "expected the 204, got %d" % r.status)
        check_real(c.request("GET", "/second"), "the request after the 204")
        conns = {t: n for n, _, t, _ in up.requests()}
        check(conns.get("/second") not in (None, conns.get("/first")),
              "a 204 that announced a body left its connection in the pool: %r" % conns)


def test_a_304_with_content_length_is_answered_at_once():
    def respond(target, head):
        if target == "/cached":
            return [b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n"]
        return [ok()]

    with RawUpstream(respond) as up, proxy(up, "--proxy-upstream-timeout", "30s") as kg, \
            Client(kg.port, timeout=WAIT) as c:
        t0 = time.monotonic()
        try:
            r = c.request("GET", "/cached", [("If-None-Match", "\"v1\"")])
        except socket.timeout:
            raise Failure("a 304 with Content-Length: 1234 did not reach the client within %.0f s" % WAIT)
        check(r.status == 304, "expected 304, got %d" % r.status)
        check(r.header("Content-Length") == "1234", "a 304 keeps its Content-Length as metadata, got %r"
              % r.header("Content-Length"))
        check(time.monotonic() - t0 < WAIT, "the 304 took %.1f s" % (time.monotonic() - t0))
        check_real(c.request("GET", "/after"), "the request after the 304")


def test_a_head_response_with_content_length_carries_no_body():
    def respond(target, head):
        if head.startswith(b"HEAD "):
            # a broken upstream that sends the body of a HEAD anyway
            return [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(FORGED) + FORGED]
        return [ok()]

    with RawUpstream(respond) as up, proxy(up) as kg, Client(kg.port, timeout=WAIT) as c:
        r = c.request("HEAD", "/thing")
        check(r.status == 200 and r.header("Content-Length") == str(len(FORGED)),
              "HEAD: %d, Content-Length %r" % (r.status, r.header("Content-Length")))
        check_real(c.request("GET", "/after"), "the request after the HEAD")


def test_an_interim_response_with_content_length_relays_no_body():
    def respond(target, head):
        return [b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\nContent-Length: 5\r\n\r\nhello" + ok()]

    with RawUpstream(respond) as up, proxy(up) as kg, Client(kg.port, timeout=WAIT) as c:
        c.send(c.build("GET", "/hints"))
        statuses = []
        try:
            while True:
                r = c.read_response(skip_1xx=False)
                statuses.append(r.status)
                if r.status >= 200:
                    break
        except Failure as e:
            raise Failure("the bytes after a 103 reached the client (%s); statuses so far %r" % (e, statuses))
        check(r.status == 502, "a 103 followed by body bytes must end in a 502, got %r" % statuses)
        check(not c.buf, "bytes after the 502: %r" % bytes(c.buf[:100]))


# ---------------------------------------------------------------- framing headers

def test_connection_cannot_remove_the_framing_headers():
    def respond(target, head):
        if target == "/cl":
            return [b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 4\r\n\r\nreal"]
        return [b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding, X-Hop\r\nX-Hop: 1\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n4\r\nreal\r\n0\r\n\r\n"]

    with RawUpstream(respond) as up, proxy(up) as kg, Client(kg.port, timeout=WAIT) as c:
        for target in ("/cl", "/te", "/cl"):
            try:
                r = c.request("GET", target)
            except socket.timeout:
                raise Failure("%s: the response reached the client without framing and hung" % target)
            check(r.header("Content-Length") is not None or r.header("Transfer-Encoding") == "chunked",
                  "%s: no framing header to the client on a kept-alive connection: %r" % (target, r.raw_head))
            check(r.body == b"real", "%s: body %r" % (target, r.body))
            check(r.header("X-Hop") is None, "%s: a Connection-listed header reached the client" % target)


# ---------------------------------------------------------------- malformed heads

def test_a_malformed_upstream_head_is_502():
    bad = {
        "/zero": b"HTTP/1.1 099 Odd\r\nContent-Length: 4\r\n\r\nreal",
        "/huge": b"HTTP/1.1 999 Odd\r\nContent-Length: 4\r\n\r\nreal",
        "/space": b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 4\r\n\r\nreal",
        "/empty": b"HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 4\r\n\r\nreal",
        "/nul": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 4\r\n\r\nreal",
    }

    def respond(target, head):
        return [bad[target], RawUpstream.CLOSE]

    with RawUpstream(respond) as up, proxy(up) as kg:
        for target in bad:
            r = request(kg.port, "GET", target, timeout=WAIT)
            check(r.status == 502, "%s: a malformed upstream head must be 502, got %d %r"
                  % (target, r.status, r.raw_head))
            expect_error(r, 502, "invalid")
        # obs-fold: RFC 9112 section 5.2 lets a proxy unfold it (or refuse);
        # what reaches the client never continues a header on a new line
        up.respond = lambda target, head: [b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 4\r\n\r\nreal",
                                           RawUpstream.CLOSE]
        r = request(kg.port, "GET", "/fold", timeout=WAIT)
        check(r.status == 502 or (r.status == 200 and b"\r\n " not in r.raw_head and b"\r\n\t" not in r.raw_head),
              "a folded upstream header reached the client folded: %r" % r.raw_head)


# ---------------------------------------------------------------- interim responses

def test_interim_responses_are_not_relayed_to_http10_clients():
    def respond(target, head):
        return [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok()]

    with RawUpstream(respond) as up, proxy(up) as kg, Client(kg.port, timeout=WAIT) as c:
        c.send(c.build("GET", "/old", version="HTTP/1.0"))
        r = c.read_response(skip_1xx=False)
        check(r.status == 200, "an HTTP/1.0 client got a %d before its response" % r.status)
        check(r.body == b"real", "body %r" % r.body)


def test_more_than_eight_interim_responses_are_502():
    hint = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"

    def respond(target, head):
        if target == "/eight":
            return [hint * 8 + ok()]
        return [hint * 9 + ok()]

    with RawUpstream(respond) as up, proxy(up) as kg:
        with Client(kg.port, timeout=WAIT) as c:
            c.send(c.build("GET", "/eight"))
            got = [c.read_response(skip_1xx=False).status for _ in range(9)]
            check(got == [103] * 8 + [200], "eight interim responses are relayed, then the answer: %r" % got)
        with Client(kg.port, timeout=WAIT) as c:
            c.send(c.build("GET", "/nine"))
            got = []
            try:
                while not got or got[-1] < 200:
                    got.append(c.read_response(skip_1xx=False).status)
            except ConnClosed:
                got.append("closed")
            check(got[-1] in (502, "closed") and got.count(103) <= 8,
                  "a ninth interim response must end the exchange (502 or close): %r" % got)


# ---------------------------------------------------------------- failures after the head

def test_a_response_cut_after_its_head_closes_the_client_and_is_logged_once():
    def respond(target, head):
        if target == "/cut":
            return [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10, RawUpstream.CLOSE]
        return [ok()]

    with RawUpstream(respond) as up, proxy(up) as kg:
        with Client(kg.port, timeout=WAIT) as c:
            c.send(c.build("GET", "/cut"))
            version, status, reason, headers, raw = c.read_head()
            check(status == 200, "the head went out with status %d" % status)
            got = b""
            try:
                while len(got) < 100:
                    if not c.buf:
                        c._fill()
                    got += bytes(c.buf)
                    del c.buf[:]
            except ConnClosed:
                pass
            check(got == b"x" * 10, "the client got %r of a response cut after 10 bytes" % got[:50])
            check(c.is_closed(WAIT), "the client connection stayed open after a truncated response")
        check_real(request(kg.port, "GET", "/marker", timeout=WAIT), "/marker")
        kg.wait_for_log(r'"GET /marker"')
        lines = [l for l in kg.stderr_text().splitlines() if '"GET /cut' in l]
        check(len(lines) == 1, "a response cut mid-body must be in the access log once, found %r" % lines)


def test_a_response_cut_before_any_byte_reached_the_client_is_502():
    def respond(target, head):
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", RawUpstream.CLOSE]

    with RawUpstream(respond) as up, proxy(up) as kg:
        r = request(kg.port, "GET", "/cut", timeout=WAIT)
        expect_error(r, 502)
        kg.wait_for_log(r'"GET /cut')
        lines = [l for l in kg.stderr_text().splitlines() if '"GET /cut' in l]
        check(len(lines) == 1, "the 502 must be in the access log once, found %r" % lines)


# ---------------------------------------------------------------- request headers

def upstream_headers(r):
    check(r.status == 200, "expected the upstream's 200, got %d %r" % (r.status, r.body[:300]))
    out = {}
    for k, v in r.json()["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def test_underscored_header_names_never_reach_the_upstream():
    sent = [("X_Keygate_Role", "maintainer"), ("X-Keygate_Role", "maintainer"), ("X_Keygate-Principal", "root"),
            ("X_Custom", "1"), ("X-Other", "kept")]
    with Upstream() as up:
        with proxy(up) as kg:
            h = upstream_headers(request(kg.port, "GET", "/u", sent))
            leaked = sorted(k for k in h if "_" in k)
            check(not leaked, "headers with _ in their name reached the upstream: %r" % leaked)
            check(h.get("x-other") == ["kept"], "X-Other lost: %r" % h.get("x-other"))
        with proxy(up, "--proxy-underscores-in-headers") as kg:
            h = upstream_headers(request(kg.port, "GET", "/u", sent))
            forged = sorted(k for k in h if k.replace("_", "-").startswith("x-keygate-"))
            check(not forged, "with underscores allowed, _-spelt X-Keygate- headers still reached it: %r" % forged)
            check(h.get("x_custom") == ["1"], "proxy.underscores_in_headers on: X_Custom lost: %r" % sorted(h))


def test_forwarded_is_passed_on_only_from_a_trusted_proxy():
    fwd = [("Forwarded", "for=203.0.113.9;proto=https")]
    with Upstream() as up:
        with proxy(up) as kg:
            h = upstream_headers(request(kg.port, "GET", "/f", fwd))
            check("forwarded" not in h, "an untrusted peer's Forwarded reached the upstream: %r" % h.get("forwarded"))
        with proxy(up, "--trusted-proxies", "127.0.0.0/8") as kg:
            h = upstream_headers(request(kg.port, "GET", "/f", fwd))
            check(h.get("forwarded") == ["for=203.0.113.9;proto=https"],
                  "a trusted proxy's Forwarded must be passed on: %r" % h.get("forwarded"))


def test_x_forwarded_proto_and_host_are_kept_only_from_a_trusted_proxy():
    xf = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "api.example.com")]
    with Upstream() as up:
        with proxy(up, "--trusted-proxies", "127.0.0.0/8") as kg:
            h = upstream_headers(request(kg.port, "GET", "/x", xf))
            check(h.get("x-forwarded-proto") == ["https"],
                  "a trusted proxy's X-Forwarded-Proto must be kept: %r" % h.get("x-forwarded-proto"))
            check(h.get("x-forwarded-host") == ["api.example.com"],
                  "a trusted proxy's X-Forwarded-Host must be kept: %r" % h.get("x-forwarded-host"))
            h = upstream_headers(request(kg.port, "GET", "/x"))
            check(h.get("x-forwarded-proto") == ["http"], "none sent: keygate's own, got %r"
                  % h.get("x-forwarded-proto"))
        with proxy(up) as kg:
            h = upstream_headers(request(kg.port, "GET", "/x", xf))
            check(h.get("x-forwarded-proto") == ["http"],
                  "an untrusted peer's X-Forwarded-Proto must be replaced: %r" % h.get("x-forwarded-proto"))
            check(h.get("x-forwarded-host") == ["127.0.0.1:%d" % kg.port],
                  "an untrusted peer's X-Forwarded-Host must be replaced: %r" % h.get("x-forwarded-host"))


def test_an_upgrade_keygate_does_not_tunnel_reaches_the_upstream_as_a_plain_request():
    with Upstream() as up, proxy(up) as kg:
        r = request(kg.port, "GET", "/h2c", [("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
                                             ("Connection", "Upgrade, HTTP2-Settings")])
        h = upstream_headers(r)
        for name in ("upgrade", "http2-settings"):
            check(name not in h, "%s reached the upstream on a request keygate does not tunnel: %r"
                  % (name, h.get(name)))
        conn = ",".join(h.get("connection", [])).lower()
        check("upgrade" not in conn, "Connection: %r reached the upstream" % conn)
        check(r.json()["method"] == "GET" and r.json()["path"] == "/h2c", "not the plain GET: %r" % r.json())


def test_an_upstream_101_to_a_request_keygate_did_not_tunnel_is_502():
    def respond(target, head):
        return [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"]

    with RawUpstream(respond) as up, proxy(up) as kg:
        r = request(kg.port, "GET", "/h2c", [("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
                                             ("Connection", "Upgrade, HTTP2-Settings")], timeout=WAIT)
        expect_error(r, 502)
        heads = [h for _, _, _, h in up.requests()]
        check(heads and not re.search(rb"(?im)^upgrade:", heads[0]),
              "the upstream was asked to upgrade: %r" % heads)


def test_an_upstream_that_answers_before_the_chunked_body_ended_is_not_pooled():
    # The upstream answers 413 on the head alone while keygate is still
    # forwarding a chunked body. That upstream connection is mid-request (the
    # upstream reads on for the rest of the body), so keygate must close it
    # rather than pool it: pooled, the next request's bytes would be read as
    # that body's chunks and the two sides would be desynchronised.
    with Upstream() as up, proxy(up) as kg:
        with Client(kg.port, timeout=WAIT) as c:
            c.send(c.build("POST", "/early?status=413", [("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n")
            r = c.read_response("POST")
            check(r.status == 413, "the upstream's early answer: %d %r" % (r.status, r.body[:200]))
            early_conn = r.json()["conn"]
            try:  # the rest of the body, after the answer (keygate may have closed by now)
                c.send(b"5\r\nworld\r\n0\r\n\r\n")
            except OSError:
                pass
        r = request(kg.port, "POST", "/after-early", body=b"ping", timeout=WAIT)
        line = up.wait_log(lambda l: l.startswith("EARLY %d " % early_conn), timeout=WAIT)
        check(line is not None and " desync " not in line,
              "the upstream connection that answered early got another request's bytes as its body: %r" % line)
        check(r.status == 200, "the next request (a POST, never retried) after an early answer: %d %r"
              % (r.status, r.body[:200]))
        info = r.json()
        check(info["path"] == "/after-early" and info["body_len"] == 4,
              "the next request got another answer: %r" % info)
        check(info["conn"] != early_conn,
              "the next request went to the upstream connection that answered early (port %d)" % early_conn)


# ---------------------------------------------------------------- exact heads

def test_status_lines_and_content_length_reach_the_client_byte_for_byte():
    # the status line is copied (the upstream's own phrase) or made at
    # compile time (none sent); Content-Length is written by keygate's itoa
    answers = {
        "/ok": (b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 4\r\n\r\nreal",
                b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 4\r\n\r\n"),
        "/own": (b"HTTP/1.1 404 Nope, not here\r\nContent-Length: 4\r\n\r\nreal",
                 b"HTTP/1.1 404 Nope, not here\r\nContent-Length: 4\r\n\r\n"),
        "/none": (b"HTTP/1.1 201\r\nContent-Length: 4\r\n\r\nreal",
                  b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\n"),
        "/unlisted": (b"HTTP/1.1 299 \r\nContent-Length: 4\r\n\r\nreal",
                      b"HTTP/1.1 299 Unknown\r\nContent-Length: 4\r\n\r\n"),
        "/head": (b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890\r\n\r\n",
                  b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890\r\n\r\n"),
    }

    def respond(target, head):
        return [answers[target][0]]

    with RawUpstream(respond) as up, proxy(up) as kg, Client(kg.port, timeout=WAIT) as c:
        for target, (_, want) in answers.items():
            method = "HEAD" if target == "/head" else "GET"
            r = c.request(method, target)
            check(r.raw_head == want, "%s: the client got the head\n%r\nwant\n%r" % (target, r.raw_head, want))


def test_keygates_own_answer_has_an_exact_status_line_and_content_length():
    with Upstream() as up, Keygate("--upstream", up.url, "--restricted") as kg, \
            Client(kg.port, timeout=WAIT) as c:
        for target in ("/bytes/abc", "/"):
            r = c.request("GET", target)
            m = re.match(rb"HTTP/1\.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                         rb"Content-Length: (\d+)\r\n(?:[A-Za-z-]+: [^\r\n]*\r\n)*\r\n\Z", r.raw_head)
            check(m is not None, "%s: keygate's 401 head is %r" % (target, r.raw_head))
            check(int(m.group(1)) == len(r.body) and r.body.startswith(b"{"),
                  "%s: Content-Length %s for a body of %d bytes" % (target, m.group(1).decode(), len(r.body)))
        check(up.requests() == [], "the upstream received %r" % up.requests())
