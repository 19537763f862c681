"""keygate -> upstreams over TLS (docs/tls.md, "Upstreams over TLS"): an
https upstream (upstream.py with --tls-cert, a certificate from the test's
throw-away CA) verified and proxied with bodies both ways over one pooled
TLS session; sessions resumed on reconnect; a wrong name, an unknown CA and a
handshake that never ends refused before anything is sent; mutual TLS;
proxy.tls_verify=false working and warned about; the stale pooled
connection retried over TLS."""
import base64
import hashlib
import json
import os
import signal
import socket
import time

from harness import Client, Keygate, Upstream, big_size, check, expect_error, pattern_sha256, request, timeout
from test_proxy import check_rss, send_pattern, ws_client_frame, ws_read_frame
from test_tls import Certs, client_ctx


class TLSUpstream(Upstream):
    """upstream.py speaking HTTPS with a certificate of certs' CA for
    localhost and 127.0.0.1 (or sans); client_ca: it requires a client
    certificate signed by that CA (client_pair is then what the readiness
    check shows)."""

    def __init__(self, certs, sans=("DNS:localhost", "IP:127.0.0.1"), client_ca=None, client_pair=None):
        cert, key = certs.server("upstream", "upstream", sans)
        args = ["--tls-cert", cert, "--tls-key", key]
        if client_ca:
            args += ["--tls-client-ca", client_ca]
        super().__init__(*args)
        self.certs = certs
        self.client_pair = client_pair
        self.ready_ports = set()

    def __enter__(self):
        super().__enter__()
        self.url = "https://localhost:%d" % self.port
        return self

    def ready_check(self):
        ctx = client_ctx(self.certs, check_hostname=False)
        if self.client_pair:
            ctx.load_cert_chain(*self.client_pair)
        c = Client(self.port, timeout=5)
        try:
            c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
            self.ready_ports.add(c.sock.getsockname()[1])  # its handshake is not keygate's
            r = c.request("GET", "/__upstream_ready")
            check(r.status == 200, "upstream.py (TLS) answered %d" % r.status)
        finally:
            c.close()

    def handshakes(self):
        """[(conn, reused, client CN)] of the TLS handshakes keygate made."""
        out = []
        for l in self.log_lines():
            p = l.split(" ")
            if p[0] == "TLS" and int(p[1]) not in self.ready_ports:
                out.append((int(p[1]), p[2] == "reused=1", p[3][len("client="):]))
        return out

    def tls_failures(self):
        return [l for l in self.log_lines() if l.startswith("TLSFAIL ")]


def https_url(up, host="localhost"):
    return "https://%s:%d" % (host, up.port)


def info(resp):
    check(resp.status == 200, "expected 200 from the upstream, got %d: %r" % (resp.status, resp.body[:300]))
    return json.loads(resp.body)


# ---------------------------------------------------------------- verified and pooled

@timeout(90)
def test_https_upstream_is_verified_and_proxied_over_one_pooled_tls_session():
    with Certs() as certs, TLSUpstream(certs) as up, \
            Keygate("--require-auth=false", "--upstream", https_url(up), "--proxy-tls-ca", certs.ca) as kg:
        body = bytes(range(256)) * 1200  # 300 KiB up
        with Client(kg.port, timeout=20) as c:
            j = info(c.request("POST", "/upload", body=body))
            check(j["body_len"] == len(body) and j["body_sha256"] == hashlib.sha256(body).hexdigest(),
                  "the upstream got %d bytes (sha %s), want %d" % (j["body_len"], j["body_sha256"][:12], len(body)))
            size = 3 * 1024 * 1024 + 17  # 3 MiB down
            r = c.request("GET", "/download?size=%d" % size)
            check(r.status == 200 and len(r.body) == size, "download: %d, %d bytes, want %d" % (
                r.status, len(r.body), size))
            check(hashlib.sha256(r.body).hexdigest() == pattern_sha256(size), "download: the body differs")
            r = c.request("GET", "/download?size=200000&chunked=1")
            check(len(r.body) == 200000 and hashlib.sha256(r.body).hexdigest() == pattern_sha256(200000),
                  "chunked download: %d bytes or a different body" % len(r.body))
            conns = {info(c.request("GET", "/keepalive-%d" % i))["conn"] for i in range(30)}
        check(len(conns) == 1, "30 sequential requests used %d upstream connections" % len(conns))
        hs = up.handshakes()
        check(len(hs) == 1, "expected one TLS handshake for 33 requests over a pooled session, got %d: %r"
              % (len(hs), hs))
        paths = [t for _, _, t in up.requests()]
        check(paths[:3] == ["/upload", "/download?size=%d" % size, "/download?size=200000&chunked=1"]
              and len(paths) == 33, "upstream requests %r" % paths[:5])


@timeout(60)
def test_an_ip_literal_upstream_is_checked_against_the_certificates_ip_address():
    with Certs() as certs, TLSUpstream(certs, sans=("IP:127.0.0.1",)) as up, \
            Keygate("--require-auth=false", "--upstream", https_url(up, "127.0.0.1"), "--proxy-tls-ca", certs.ca) as kg:
        check(info(request(kg.port, "GET", "/by-ip"))["path"] == "/by-ip", "wrong response")


@timeout(60)
def test_sessions_are_resumed_when_keygate_reconnects():
    # pool_size 0: every request is a new connection, so a new handshake
    with Certs() as certs, TLSUpstream(certs) as up, \
            Keygate("--require-auth=false", "--upstream", https_url(up), "--proxy-tls-ca", certs.ca,
                    "--proxy-pool-size", "0") as kg:
        for i in range(3):
            info(request(kg.port, "GET", "/r%d" % i))
        hs = up.handshakes()
        check(len(hs) == 3, "expected 3 handshakes (no pool), got %r" % hs)
        check(not hs[0][1], "the first handshake cannot be a resumption: %r" % hs)
        check(hs[1][1] and hs[2][1], "reconnections were full handshakes, not resumed: %r" % hs)


# ---------------------------------------------------------------- refusals

@timeout(60)
def test_a_wrong_name_is_a_502_with_a_log_line_and_nothing_reaches_the_upstream():
    with Certs() as certs, TLSUpstream(certs, sans=("DNS:other.example",)) as up:
        for host, words in (("localhost", "hostname mismatch"), ("127.0.0.1", "IP address mismatch")):
            with Keygate("--require-auth=false", "--upstream", https_url(up, host), "--proxy-tls-ca", certs.ca) as kg:
                r = request(kg.port, "GET", "/secret?token=abc", headers={"Authorization": "Bearer x"})
                expect_error(r, 502, "upstream TLS handshake failed", words)
                kg.wait_for_log(r"upstream %s:%d: TLS handshake failed: %s" % (host.replace(".", r"\."), up.port,
                                                                               words), 5)
        check(not up.requests(), "requests reached the upstream: %r" % up.requests())


@timeout(60)
def test_an_unknown_ca_is_a_502_with_a_log_line_and_nothing_reaches_the_upstream():
    with Certs() as certs, Certs() as other, TLSUpstream(certs) as up:
        for extra in (["--proxy-tls-ca", other.ca], []):  # another CA; the system's CAs
            with Keygate("--require-auth=false", "--upstream", https_url(up), *extra) as kg:
                r = request(kg.port, "POST", "/secret", body=b"password=hunter2")
                # the upstream sends the test CA after its certificate: OpenSSL
                # says so rather than "unable to get local issuer certificate"
                msg = expect_error(r, 502, "upstream TLS handshake failed")["message"]
                check("self-signed certificate in certificate chain" in msg or "unable to get local issuer" in msg,
                      "the 502 does not say the CA is unknown: %r" % msg)
                kg.wait_for_log(r"upstream localhost:%d: TLS handshake failed: (self-signed certificate in certificate "
                                r"chain|unable to get local issuer)" % up.port, 5)
        check(not up.requests(), "requests reached the upstream: %r" % up.requests())


@timeout(60)
def test_a_handshake_that_never_finishes_is_a_504_within_connect_timeout():
    # a listener that never accepts: the TCP connection completes (backlog),
    # the ClientHello gets no answer
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with Keygate("--require-auth=false", "--upstream", "https://127.0.0.1:%d" % port,
                     "--proxy-connect-timeout", "300ms") as kg:
            r = request(kg.port, "GET", "/x", timeout=10)
            expect_error(r, 504, "TLS", "proxy.connect_timeout")
            kg.wait_for_log(r"upstream 127\.0\.0\.1:%d: connect timed out \(the TLS handshake" % port, 5)


@timeout(60)
def test_a_missing_proxy_tls_ca_is_a_start_error_naming_the_file():
    with Certs() as certs:
        missing = certs.path("no-such-ca.pem")
        kg = Keygate("--upstream", "https://localhost:9", "--proxy-tls-ca", missing, wait=False)
        with kg:
            rc = kg.wait_exit(10)
            check(rc not in (None, 0), "keygate started (exit %r) with a missing proxy.tls_ca" % rc)
            check("proxy.tls_ca %s" % missing in kg.stderr_text(), "error: %r" % kg.stderr_text()[-500:])


# ---------------------------------------------------------------- mutual TLS

@timeout(60)
def test_mutual_tls_shows_the_client_certificate_an_upstream_requires():
    with Certs() as certs:
        client = certs.server("client", "keygate-client", sans=("DNS:keygate-client",))
        with TLSUpstream(certs, client_ca=certs.ca, client_pair=client) as up:
            with Keygate("--require-auth=false", "--upstream", https_url(up), "--proxy-tls-ca", certs.ca,
                         "--proxy-tls-cert", client[0], "--proxy-tls-key", client[1]) as kg:
                check(info(request(kg.port, "GET", "/mtls"))["path"] == "/mtls", "wrong response")
            hs = up.handshakes()
            check([cn for _, _, cn in hs] == ["keygate-client"], "the upstream saw client certificates %r" % hs)

            # without one, the upstream refuses the session: 502, nothing sent
            with Keygate("--require-auth=false", "--upstream", https_url(up), "--proxy-tls-ca", certs.ca) as kg:
                r = request(kg.port, "GET", "/no-client-cert")
                expect_error(r, 502, "upstream TLS")
                kg.wait_for_log(r"upstream localhost:%d: TLS (handshake|session) failed" % up.port, 5)
            check([t for _, _, t in up.requests()] == ["/mtls"], "upstream requests %r" % up.requests())
            check(up.tls_failures(), "the upstream logged no refused handshake")


# ---------------------------------------------------------------- verification off

@timeout(60)
def test_tls_verify_false_accepts_any_certificate_and_warns_at_start_and_reload():
    with Certs() as certs, TLSUpstream(certs, sans=("DNS:other.example",)) as up, \
            Keygate("--require-auth=false", "--upstream", https_url(up), "--proxy-tls-verify=false") as kg:
        kg.wait_for_log(r"warn.*proxy\.tls_verify is false: the certificate of upstream https://localhost:%d is NOT "
                        r"verified" % up.port, 5)
        check(info(request(kg.port, "GET", "/unverified"))["path"] == "/unverified", "wrong response")
        mark = kg.log_mark()
        kg.send_signal(signal.SIGHUP)
        kg.wait_for_log(r"configuration reloaded", 10, since=mark)
        kg.wait_for_log(r"warn.*proxy\.tls_verify is false", 5, since=mark)


@timeout(60)
def test_tls_verify_true_is_silent():
    with Certs() as certs, TLSUpstream(certs) as up, \
            Keygate("--require-auth=false", "--upstream", https_url(up), "--proxy-tls-ca", certs.ca) as kg:
        info(request(kg.port, "GET", "/x"))
        check("tls_verify" not in kg.stderr_text(), "a verification warning with verification on")


# ---------------------------------------------------------------- stale pooled sessions

@timeout(60)
def test_stale_pooled_tls_connection_is_retried_for_get():
    with Certs() as certs, TLSUpstream(certs) as up, \
            Keygate("--require-auth=false", "--upstream", https_url(up), "--proxy-tls-ca", certs.ca) as kg:
        info(request(kg.port, "GET", "/arm-close"))
        r = request(kg.port, "GET", "/after-arm")
        check(up.drops(), "keygate did not reuse the pooled TLS connection: the retry path was not exercised")
        check(info(r)["path"] == "/after-arm", "wrong response after the retry")
        hs = up.handshakes()
        check(len(hs) == 2 and hs[1][1], "the retry's new connection should resume the session: %r" % hs)


# ---------------------------------------------------------------- timeouts and tunnels

@timeout(60)
def test_upstream_timeout_still_applies_over_tls():
    with Certs() as certs, TLSUpstream(certs) as up, \
            Keygate("--require-auth=false", "--upstream", up.url, "--proxy-tls-ca", certs.ca,
                    "--proxy-upstream-timeout", "300ms") as kg:
        t0 = time.monotonic()
        r = request(kg.port, "GET", "/slow?ms=3000", timeout=10)
        took = time.monotonic() - t0
        expect_error(r, 504, "upstream")
        check(took < 2.5, "504 came after %.1f s with a 300ms upstream timeout" % took)
        check(info(request(kg.port, "GET", "/after-timeout"))["path"] == "/after-timeout", "request after a 504")


@timeout(60)
def test_websocket_is_tunnelled_through_a_tls_upstream_connection():
    key = base64.b64encode(os.urandom(16)).decode()
    with Certs() as certs, TLSUpstream(certs) as up, \
            Keygate("--require-auth=false", "--upstream", up.url, "--proxy-tls-ca", certs.ca) as kg, \
            Client(kg.port, timeout=5) as c:
        c.send(c.build("GET", "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                      ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]))
        r = c.read_response(skip_1xx=False)
        check(r.status == 101, "upgrade answered %d %r" % (r.status, r.body[:200]))
        blob = os.urandom(5000)
        c.send(ws_client_frame(2, blob))
        op, data = ws_read_frame(c)
        check((op, data) == (2, blob), "binary echo through the TLS tunnel differs (opcode %d, %d bytes)"
              % (op, len(data)))


# ---------------------------------------------------------------- big bodies: backpressure

@timeout(180)
def test_big_bodies_through_a_tls_upstream_keep_memory_flat_both_ways():
    size = big_size() // 3
    with Certs() as certs, TLSUpstream(certs) as up, \
            Keygate("--require-auth=false", "--upstream", up.url, "--proxy-tls-ca", certs.ca) as kg, \
            Client(kg.port, timeout=60) as c:
        c.send(c.build("PUT", "/upload", [("Content-Length", str(size))]))
        send_pattern(c, size, False)
        j = info(c.read_response())
        check(j["body_len"] == size and j["body_sha256"] == pattern_sha256(size),
              "upload: the upstream got %d bytes (or other bytes), want %d" % (j["body_len"], size))
        h, n = hashlib.sha256(), [0]

        def sink(d):
            h.update(d)
            n[0] += len(d)

        c.send(c.build("GET", "/download?size=%d&chunked=1" % size))
        r = c.read_response(sink=sink)
        check(r.status == 200 and n[0] == size and h.hexdigest() == pattern_sha256(size),
              "download: status %d, %d bytes of %d, or other bytes" % (r.status, n[0], size))
        check_rss(kg, "TLS upstream upload and download")
