"""Reverse proxy: methods, headers, bodies (small and 300 MB), keep-alive and
the upstream pool, upstream failures, WebSocket, HTTP/1.0."""
import base64
import hashlib
import os
import socket
import struct
import time

from harness import (ASAN, Client, bcrypt_hash, ConnClosed, Failure, Keygate, Upstream, PATTERN_BLOCK, big_size, check,
                     expect_error, free_port, pattern_sha256, request, skip, timeout)

PROXY = ("--require-auth=false",)
RSS_LIMIT_KIB = 64 * 1024


def proxy(up, *extra, **kw):
    return Keygate(*(PROXY + ("--upstream", up.url) + extra), **kw)


def upstream_headers(info):
    """Upstream's view of the request headers as {lowercase name: [values]}."""
    out = {}
    for k, v in info["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def get_info(resp):
    check(resp.status == 200, "expected 200 from upstream, got %d: %r" % (resp.status, resp.body[:300]))
    j = resp.json()
    check(isinstance(j, dict) and "headers" in j, "response is not the upstream's echo: %r" % resp.body[:300])
    return j


# ---------------------------------------------------------------- keygate's own

def test_health_reports_status_version_uptime_store():
    with Keygate() as kg:
        r = request(kg.port, "GET", "/_keygate/health")
        check(r.status == 200, "health: status %d" % r.status)
        ct = r.header("Content-Type") or ""
        check(ct.startswith("application/json"), "health: Content-Type %r" % ct)
        j = r.json()
        check(j.get("status") == "ok", "health: status field %r" % j.get("status"))
        check(isinstance(j.get("version"), str) and j["version"], "health: version %r" % j.get("version"))
        up = j.get("uptime_seconds")
        check(isinstance(up, (int, float)) and not isinstance(up, bool) and up >= 0,
              "health: uptime_seconds %r" % up)
        st = j.get("store")
        check(isinstance(st, dict) and "backend" in st and "status" in st, "health: store %r" % st)


def test_health_lists_the_routes_keygate_answers_itself():
    def routes(kg):
        return [(x["path"], x["methods"], x["owner"]) for x in request(kg.port, "GET", "/_keygate/health").json()["routes"]]
    with Upstream() as up, proxy(up) as kg:
        check(routes(kg) == [("/_keygate/health", "GET HEAD", "keygate"), ("/_keygate/check", "any", "keygate"),
                             ("/_keygate/*", "any", "keygate"), ("/_security/*", "GET POST PUT DELETE", "elasticsearch")],
              "proxy mode: %r" % routes(kg))
    with Keygate("--restricted", "--admin-password", bcrypt_hash("x"), "--api-prefix", "/_kg",
                 api_prefix="/_kg") as kg:
        got = [(x["path"], x["methods"], x["owner"]) for x in request(kg.port, "GET", "/_kg/health").json()["routes"]]
        check(got == [("/_kg/health", "GET HEAD", "keygate"), ("/_kg/check", "any", "keygate"),
                      ("/_kg/*", "any", "keygate"), ("/auth", "POST", "bee"), ("/refresh", "POST", "bee"),
                      ("/_security/*", "GET POST PUT DELETE", "elasticsearch"), ("/*", "any", "keygate")],
              "Bee restricted mode without an upstream, api prefix /_kg: %r" % got)


def test_unknown_keygate_endpoint_is_404_json():
    with Upstream() as up, proxy(up) as kg:
        r = request(kg.port, "GET", "/_keygate/xyz")
        expect_error(r, 404)
        check(not up.wait_request(lambda m, t: "xyz" in t, timeout=0.2),
              "/_keygate/xyz was proxied to the upstream")


# ---------------------------------------------------------------- requests

def test_methods_reach_upstream_with_path_query_headers_and_body():
    target = "/a/b%20c/d?x=1&y=%2F&z=&x=2"
    with Upstream() as up, proxy(up) as kg, Client(kg.port) as c:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            body = None if method == "GET" else (method.encode() + b"-body-\x00\xff" * 50)
            r = c.request(method, target, [("X-Custom-One", "v1"), ("X-Custom-Two", "a, b"),
                                           ("Accept", "application/json")], body)
            info = get_info(r)
            check(info["method"] == method, "%s arrived as %s" % (method, info["method"]))
            check(info["path"] == target, "%s: upstream saw path %r, want %r" % (method, info["path"], target))
            h = upstream_headers(info)
            check(h.get("x-custom-one") == ["v1"] and h.get("x-custom-two") == ["a, b"]
                  and h.get("accept") == ["application/json"],
                  "%s: custom headers not preserved: %r" % (method, info["headers"]))
            want = hashlib.sha256(body or b"").hexdigest()
            check(info["body_len"] == len(body or b"") and info["body_sha256"] == want,
                  "%s: body differs at upstream (len %d, want %d)"
                  % (method, info["body_len"], len(body or b"")))


def test_host_preserved_by_default():
    with Upstream() as up, proxy(up) as kg:
        info = get_info(request(kg.port, "GET", "/h", host="api.example.test:8443"))
        h = upstream_headers(info)
        check(h.get("host") == ["api.example.test:8443"], "upstream Host %r" % h.get("host"))


def test_host_rewritten_when_preserve_host_false():
    with Upstream() as up, proxy(up, "--proxy-preserve-host=false") as kg:
        info = get_info(request(kg.port, "GET", "/h", host="api.example.test"))
        h = upstream_headers(info)
        want = "127.0.0.1:%d" % up.port
        check(h.get("host") == [want], "upstream Host %r, want %r" % (h.get("host"), want))


def test_forwarded_headers_added():
    with Upstream() as up, proxy(up) as kg:
        info = get_info(request(kg.port, "GET", "/f", host="front.example.test"))
        h = upstream_headers(info)
        xff = h.get("x-forwarded-for", [])
        check(len(xff) == 1 and xff[0].split(",")[-1].strip() == "127.0.0.1",
              "X-Forwarded-For %r, want ending with 127.0.0.1" % xff)
        check(h.get("x-forwarded-proto") == ["http"], "X-Forwarded-Proto %r" % h.get("x-forwarded-proto"))
        check(h.get("x-forwarded-host") == ["front.example.test"],
              "X-Forwarded-Host %r" % h.get("x-forwarded-host"))
        info = get_info(request(kg.port, "GET", "/f", [("X-Forwarded-For", "1.2.3.4")]))
        xff = upstream_headers(info).get("x-forwarded-for", [])
        check([", ".join(p.strip() for p in ",".join(xff).split(","))] == ["1.2.3.4, 127.0.0.1"],
              "X-Forwarded-For %r, want '1.2.3.4, 127.0.0.1'" % xff)


def test_forwarded_headers_not_added_when_disabled():
    with Upstream() as up, proxy(up, "--proxy-forwarded-headers=false") as kg:
        info = get_info(request(kg.port, "GET", "/f"))
        h = upstream_headers(info)
        for n in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"):
            check(n not in h, "%s added although --proxy-forwarded-headers=false: %r" % (n, h.get(n)))


def test_hop_by_hop_request_headers_removed():
    with Upstream() as up, proxy(up) as kg:
        info = get_info(request(kg.port, "GET", "/hop", [
            ("Connection", "keep-alive, X-Drop-Me"), ("X-Drop-Me", "1"), ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"), ("Trailer", "X-T"), ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="), ("Proxy-Connection", "keep-alive"),
            ("X-Keep-Me", "yes")]))
        h = upstream_headers(info)
        for n in ("x-drop-me", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization",
                  "proxy-connection"):
            check(n not in h, "hop-by-hop %s reached the upstream: %r" % (n, h.get(n)))
        check(all("x-drop-me" not in v.lower() for v in h.get("connection", [])),
              "client's Connection header reached the upstream: %r" % h.get("connection"))
        check(h.get("x-keep-me") == ["yes"], "end-to-end header X-Keep-Me lost")


def test_client_x_keygate_headers_never_reach_upstream():
    with Upstream() as up, proxy(up) as kg:
        info = get_info(request(kg.port, "GET", "/id", [
            ("X-Keygate-Principal", "admin"), ("x-keygate-role", "root"), ("X-KEYGATE-Scheme", "bee"),
            ("X-Keygate", "1"), ("X-Other", "kept")]))
        h = upstream_headers(info)
        forged = [k for k, v in info["headers"] if k.lower().startswith("x-keygate-")
                  and v in ("admin", "root", "bee")]
        check(not forged, "client-sent X-Keygate-* headers reached the upstream: %r" % forged)
        check(h.get("x-other") == ["kept"], "X-Other lost")


def test_upstream_status_and_headers_returned_without_hop_by_hop():
    with Upstream() as up, proxy(up) as kg, Client(kg.port) as c:
        for status in (201, 404, 418, 500, 503):
            r = c.request("GET", "/status/%d" % status)
            check(r.status == status, "upstream status %d came back as %d" % (status, r.status))
            check(r.header("X-Status") == str(status), "X-Status %r" % r.header("X-Status"))
            check(r.json().get("path") == "/status/%d" % status, "body not the upstream's")
        r = c.request("GET", "/status/200?hop=1")
        check(r.status == 200, "status %d" % r.status)
        for n in ("X-Upstream-Hop", "Keep-Alive", "Proxy-Connection"):
            check(r.header(n) is None, "hop-by-hop response header %s reached the client: %r"
                  % (n, r.header(n)))
        check(r.header("X-Status") == "200", "X-Status lost")


def test_head_has_no_body_and_connection_stays_usable():
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=5) as c:
        r = c.request("HEAD", "/download?size=12345")
        check(r.status == 200, "HEAD status %d" % r.status)
        check(r.header("Content-Length") == "12345", "HEAD Content-Length %r, want 12345"
              % r.header("Content-Length"))
        r = c.request("GET", "/after-head")
        info = get_info(r)
        check(info["path"] == "/after-head", "second request after HEAD got %r" % info["path"])


def test_204_and_304_have_no_body_and_connection_stays_usable():
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=5) as c:
        for status in (204, 304):
            r = c.request("GET", "/status/%d" % status)
            check(r.status == status, "status %d came back as %d" % (status, r.status))
            te = r.header("Transfer-Encoding")
            check(te is None, "%d response has Transfer-Encoding %r" % (status, te))
            r = c.request("GET", "/after-%d" % status)
            check(get_info(r)["path"] == "/after-%d" % status, "request after %d failed" % status)


def test_chunked_request_body_reaches_upstream_intact():
    parts = [b"a", b"hello world" * 100, b"\r\n0\r\n" * 7, os.urandom(70000), b"z"]
    body = b"".join(parts)
    wire = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    with Upstream() as up, proxy(up) as kg, Client(kg.port) as c:
        c.send(c.build("POST", "/chunked-in", [("Transfer-Encoding", "chunked")]) + wire)
        info = get_info(c.read_response())
        check(info["body_len"] == len(body) and info["body_sha256"] == hashlib.sha256(body).hexdigest(),
              "chunked body arrived as %d bytes (want %d) or with other content"
              % (info["body_len"], len(body)))
        r = c.request("GET", "/after-chunked")
        check(get_info(r)["path"] == "/after-chunked", "connection unusable after chunked body")


def test_chunked_response_passes_through():
    body = os.urandom(200000)
    with Upstream() as up, proxy(up) as kg, Client(kg.port) as c:
        r = c.request("POST", "/echo-chunked", body=body)
        check(r.status == 200, "status %d" % r.status)
        check(r.body == body, "echoed body differs (%d bytes, want %d)" % (len(r.body), len(body)))
        r = c.request("GET", "/after-echo")
        check(get_info(r)["path"] == "/after-echo", "connection unusable after chunked response")


# ---------------------------------------------------------------- connections

def test_client_keep_alive_two_requests_one_connection():
    with Upstream() as up, proxy(up) as kg, Client(kg.port) as c:
        a = get_info(c.request("GET", "/one"))
        b = get_info(c.request("GET", "/two"))
        check(a["path"] == "/one" and b["path"] == "/two", "paths %r %r" % (a["path"], b["path"]))
        check(c.request("GET", "/_keygate/health").status == 200, "health on the same connection failed")


def test_upstream_connection_is_pooled_and_reused():
    with Upstream() as up, proxy(up) as kg:
        a = get_info(request(kg.port, "GET", "/pool-1"))
        b = get_info(request(kg.port, "GET", "/pool-2"))
        check(a["conn"] == b["conn"], "sequential requests used upstream connections from ports %d and %d"
              " (no keep-alive reuse)" % (a["conn"], b["conn"]))


def test_stale_pooled_connection_is_retried_for_get():
    with Upstream() as up, proxy(up) as kg:
        get_info(request(kg.port, "GET", "/arm-close"))
        r = request(kg.port, "GET", "/after-arm")
        dropped = bool(up.drops())
        check(r.status == 200, "GET after a stale pooled connection: %d %r (%s)" % (
            r.status, r.body[:200], "the pooled connection was used and dropped" if dropped
            else "no pooled connection was used"))
        check(get_info(r)["path"] == "/after-arm", "wrong response")
        if not dropped:
            skip("keygate did not reuse the pooled connection, so the retry path was not exercised")


def test_stale_pooled_connection_not_retried_for_post():
    with Upstream() as up, proxy(up) as kg:
        get_info(request(kg.port, "GET", "/arm-close"))
        r = request(kg.port, "POST", "/post-after-arm", body=b"x" * 100)
        check(r.status == 502, "POST on a stale pooled connection: expected 502, got %d%s" % (
            r.status, "" if up.drops() else " (keygate did not reuse the pooled connection)"))
        posts = [t for _, m, t in up.requests() if m == "POST"]
        check(not posts, "the POST was retried and reached the upstream: %r" % posts)
        expect_error(r, 502)


def test_upstream_down_is_502_json():
    dead = "http://127.0.0.1:%d" % free_port()
    with Keygate(*PROXY, "--upstream", dead) as kg:
        r = request(kg.port, "GET", "/x")
        expect_error(r, 502, "upstream")
        check(request(kg.port, "GET", "/_keygate/health").status == 200, "health after 502")


def test_upstream_timeout_is_504_json():
    with Upstream() as up, proxy(up, "--proxy-upstream-timeout", "300ms") as kg:
        t0 = time.monotonic()
        r = request(kg.port, "GET", "/slow?ms=3000", timeout=10)
        took = time.monotonic() - t0
        expect_error(r, 504, "upstream")
        check(took < 2.5, "504 came after %.1f s with a 300ms upstream timeout" % took)
        r = request(kg.port, "GET", "/after-timeout")
        check(get_info(r)["path"] == "/after-timeout", "request after a 504 failed")


def test_client_disconnect_mid_download_keeps_keygate_healthy():
    with Upstream() as up, proxy(up) as kg:
        for chunked in ("0", "1"):
            c = Client(kg.port)
            try:
                c.send(c.build("GET", "/download?size=%d&chunked=%s" % (200 * 1000 * 1000, chunked)))
                c.read_head()
                c.read_exact(1 << 20, lambda d: None)
                # reset, not a polite FIN
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            finally:
                c.close()
            target = "/download?size=%d&chunked=%s" % (200 * 1000 * 1000, chunked)
            check(up.wait_log(lambda l: l.startswith("ABORT ") and target in l, 5),
                  "upstream still streaming %s 5 s after the client went away"
                  " (upstream connection not released)" % target)
            r = request(kg.port, "GET", "/_keygate/health")
            check(r.status == 200, "health after client disconnect: %d" % r.status)
            r = request(kg.port, "GET", "/after-disconnect")
            check(get_info(r)["path"] == "/after-disconnect", "request after client disconnect failed")
        check(kg.alive(), "keygate died")


def ws_client_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read_frame(c):
    try:
        b0, b1 = c.read_exact(2)
    except socket.timeout:
        raise Failure("no WebSocket frame came back within %.0f s" % c.sock.gettimeout())
    except ConnClosed:
        raise Failure("connection closed instead of a WebSocket frame")
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(c.read_exact(2), "big")
    elif n == 127:
        n = int.from_bytes(c.read_exact(8), "big")
    check(not b1 & 0x80, "server frame is masked")
    return b0 & 0x0F, c.read_exact(n)


def test_websocket_is_tunnelled():
    key = base64.b64encode(os.urandom(16)).decode()
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                              .digest()).decode()
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=5) as c:
        c.send(c.build("GET", "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                      ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]))
        r = c.read_response(skip_1xx=False)
        check(r.status == 101, "upgrade answered %d %r" % (r.status, r.body[:200]))
        check(r.header("Sec-WebSocket-Accept") == accept, "Sec-WebSocket-Accept %r, want %r"
              % (r.header("Sec-WebSocket-Accept"), accept))
        c.send(ws_client_frame(1, b"hello"))
        op, data = ws_read_frame(c)
        check((op, data) == (1, b"hello"), "echo of text 'hello' came back as opcode %d %r" % (op, data))
        blob = os.urandom(1000)
        c.send(ws_client_frame(2, blob))
        op, data = ws_read_frame(c)
        check((op, data) == (2, blob), "binary echo differs (opcode %d, %d bytes)" % (op, len(data)))
        c.send(ws_client_frame(8, b"\x03\xe8"))
        op, data = ws_read_frame(c)
        check(op == 8, "close frame answered with opcode %d" % op)


def test_http10_without_host_works_and_closes():
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=5) as c:
        c.send(b"GET /old HTTP/1.0\r\nUser-Agent: old\r\n\r\n")
        r = c.read_response()
        check(r.status == 200, "HTTP/1.0 request got %d %r" % (r.status, r.body[:200]))
        check(r.header("Transfer-Encoding") is None, "chunked response to an HTTP/1.0 client")
        check(get_info(r)["path"] == "/old", "wrong path at upstream")
        check(c.is_closed(5), "connection still open 5 s after the HTTP/1.0 response")


# ---------------------------------------------------------------- big bodies

def check_rss(kg, what):
    # called last: the transfer's own checks have passed by now
    if ASAN:
        skip("%s went through, but ASan's shadow memory makes the peak-RSS ceiling meaningless" % what)
    hwm = kg.vm_hwm_kib()
    check(hwm < RSS_LIMIT_KIB, "%s: keygate peak RSS (VmHWM) %.1f MiB >= 64 MiB" % (what, hwm / 1024))


def send_pattern(c, size, chunked):
    """Streams size bytes of the pattern, Content-Length or chunked (varied sizes)."""
    sizes = [1 << 20, 1, 65536, 700001, 4096, (1 << 20) - 1]
    sent, i = 0, 0
    while sent < size:
        n = min(sizes[i % len(sizes)] if chunked else 1 << 20, size - sent)
        off = sent % len(PATTERN_BLOCK)
        data = (PATTERN_BLOCK[off:] + PATTERN_BLOCK)[:n] if off + n > len(PATTERN_BLOCK) \
            else PATTERN_BLOCK[off:off + n]
        c.send(b"%x\r\n" % n + data + b"\r\n" if chunked else data)
        sent += n
        i += 1
    if chunked:
        c.send(b"0\r\n\r\n")


def big_upload(chunked):
    size = big_size()
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=60) as c:
        hdr = [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(size))]
        c.send(c.build("PUT", "/upload", hdr))
        send_pattern(c, size, chunked)
        info = get_info(c.read_response())
        check(info["body_len"] == size, "upstream got %d bytes, want %d" % (info["body_len"], size))
        check(info["body_sha256"] == pattern_sha256(size), "upload sha256 differs at upstream")
        check_rss(kg, "upload")


def big_download(chunked):
    size = big_size()
    with Upstream() as up, proxy(up) as kg, Client(kg.port, timeout=60) as c:
        h = hashlib.sha256()
        n = [0]

        def sink(d):
            h.update(d)
            n[0] += len(d)

        c.send(c.build("GET", "/download?size=%d&chunked=%d" % (size, chunked)))
        r = c.read_response(sink=sink)
        check(r.status == 200, "download status %d" % r.status)
        check(n[0] == size, "downloaded %d bytes, want %d" % (n[0], size))
        check(h.hexdigest() == pattern_sha256(size), "download sha256 differs")
        check_rss(kg, "download")


@timeout(300)
def test_large_upload_content_length_streams_in_flat_memory():
    big_upload(chunked=False)


@timeout(300)
def test_large_upload_chunked_streams_in_flat_memory():
    big_upload(chunked=True)


@timeout(300)
def test_large_download_content_length_streams_in_flat_memory():
    big_download(chunked=False)


@timeout(300)
def test_large_download_chunked_streams_in_flat_memory():
    big_download(chunked=True)
