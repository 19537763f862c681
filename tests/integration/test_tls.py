"""TLS towards clients (docs/tls.md): tls.listen with certificates the test
makes itself (a throw-away CA, server certificates with SANs, by the openssl
command line); curl and Node's https client; TLS 1.0/1.1 and plain HTTP on
the TLS port refused; SNI; SIGHUP renewals (and broken ones); session
resumption; X-Forwarded-Proto; keygate's own endpoints and an API key over
TLS; AvalancheGo's http-tls-* names."""
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from harness import (Client, ConnClosed, Failure, Keygate, Upstream, bcrypt_hash, check, free_port,
                     pattern_sha256, request, skip, timeout)

PW = "tls-test-admin-password"


class Certs:
    """A throw-away CA and the server certificates it signs (EC P-256)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="keygate-tls-")
        self.ca = self.path("ca.pem")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", self.path("ca.key"), "-out", self.ca, "-days", "2", "-subj", "/CN=keygate test CA")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "openssl %s failed: %s" % (args[0], r.stderr[-500:]))

    def server(self, name, cn, sans=("DNS:localhost", "IP:127.0.0.1")):
        """Writes NAME.pem (certificate, then the CA as its chain) and NAME.key."""
        key, csr, crt, ext = (self.path(name + s) for s in (".key", ".csr", ".crt", ".ext"))
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" % ",".join(sans))
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.path("ca.key"),
                      "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
        with open(self.path(name + ".pem"), "w") as out:
            out.write(open(crt).read() + open(self.ca).read())
        os.chmod(key, 0o600)
        return self.path(name + ".pem"), key

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def client_ctx(certs, check_hostname=True):
    ctx = ssl.create_default_context(cafile=certs.ca)
    ctx.check_hostname = check_hostname
    return ctx


class TLSClient(Client):
    """harness.Client over TLS (server name localhost unless told)."""

    def __init__(self, port, ctx, server_hostname="localhost", session=None, timeout=10.0):
        super().__init__(port, timeout=timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname, session=session)

    def subject_cn(self):
        for rdn in self.sock.getpeercert()["subject"]:
            for k, v in rdn:
                if k == "commonName":
                    return v
        return None


def tls_keygate(certs, *extra, pairs=None, **kw):
    """A Keygate with a TLS listener (kg.tls_port) and the given pairs
    (default: one for localhost)."""
    if pairs is None:
        pairs = [certs.server("server", "localhost")]
    port = free_port()
    args = ["--tls-listen", "127.0.0.1:%d" % port]
    for cert, key in pairs:
        args += ["--tls-cert", cert, "--tls-key", key]
    kg = Keygate(*(args + list(extra)), **kw)
    kg.tls_port = port
    return kg


def upstream_headers(resp):
    check(resp.status == 200, "expected 200 from the upstream, got %d: %r" % (resp.status, resp.body[:300]))
    out = {}
    for k, v in json.loads(resp.body)["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


# ---------------------------------------------------------------- clients

@timeout(60)
def test_curl_and_node_https_clients_reach_the_upstream_over_tls():
    if not shutil.which("curl") or not shutil.which("node"):
        skip("curl or node is not installed")
    with Certs() as certs, Upstream() as up, tls_keygate(certs, "--require-auth=false", "--upstream", up.url) as kg:
        url = "https://localhost:%d/from-curl" % kg.tls_port
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", certs.ca, "-w", "\n%{http_code} %{http_version}",
                            url], capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "curl failed (%d): %s" % (r.returncode, r.stderr))
        body, _, status = r.stdout.rpartition("\n")
        check(status == "200 1.1", "curl: status and HTTP version %r, want '200 1.1'" % status)
        check(json.loads(body)["path"] == "/from-curl", "curl: the upstream saw %r" % body[:200])

        script = """
const https = require('https'), fs = require('fs');
https.get({host: 'localhost', port: %d, path: '/from-node', ca: fs.readFileSync(%s), timeout: 10000}, (r) => {
  let d = ''; r.on('data', (c) => d += c);
  r.on('end', () => { console.log(r.statusCode); console.log(d); });
}).on('error', (e) => { console.error(e.message); process.exit(2); });
""" % (kg.tls_port, json.dumps(certs.ca))
        r = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "node https failed (%d): %s" % (r.returncode, r.stderr))
        first, _, body = r.stdout.partition("\n")
        check(first.split()[0] == "200", "node: status %r" % first)
        check(json.loads(body)["path"] == "/from-node", "node: the upstream saw %r" % body[:200])
        paths = [t for _, _, t in up.requests()]
        check(paths == ["/from-curl", "/from-node"], "upstream requests %r" % paths)


@timeout(60)
def test_x_forwarded_proto_says_https_for_tls_clients_and_http_for_plain_ones():
    with Certs() as certs, Upstream() as up, tls_keygate(certs, "--require-auth=false", "--upstream", up.url) as kg:
        with TLSClient(kg.tls_port, client_ctx(certs)) as c:
            h = upstream_headers(c.request("GET", "/over-tls"))
        check(h.get("x-forwarded-proto") == ["https"], "over TLS: X-Forwarded-Proto %r, want https" % h.get("x-forwarded-proto"))
        h = upstream_headers(request(kg.port, "GET", "/plain"))
        check(h.get("x-forwarded-proto") == ["http"], "plain: X-Forwarded-Proto %r, want http" % h.get("x-forwarded-proto"))


@timeout(90)
def test_large_bodies_cross_tls_both_ways_intact():
    size = 8 << 20
    with Certs() as certs, Upstream() as up, tls_keygate(certs, "--require-auth=false", "--upstream", up.url) as kg:
        with TLSClient(kg.tls_port, client_ctx(certs), timeout=30) as c:
            digest = hashlib.sha256()
            c.send(c.build("GET", "/download?size=%d" % size))
            resp = c.read_response("GET", sink=digest.update)
            check(resp.status == 200, "download over TLS: %d" % resp.status)
            check(digest.hexdigest() == pattern_sha256(size), "the %d bytes downloaded over TLS differ" % size)
            body = os.urandom(3 << 20)
            resp = c.request("POST", "/upload", body=body)
            j = json.loads(resp.body)
            check(j["body_len"] == len(body) and j["body_sha256"] == hashlib.sha256(body).hexdigest(),
                  "the upstream got %d bytes (sha %s) of the %d sent over TLS" % (j["body_len"], j["body_sha256"], len(body)))


# ---------------------------------------------------------------- refusals

@timeout(60)
def test_tls_1_0_and_1_1_are_refused_with_a_protocol_version_alert():
    with Certs() as certs, Upstream() as up, tls_keygate(certs, "--require-auth=false", "--upstream", up.url) as kg:
        for flag in ("-tls1", "-tls1_1"):
            mark = kg.log_mark()
            r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % kg.tls_port, flag,
                                "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "localhost"],
                               input="GET /old HTTP/1.1\r\nHost: x\r\n\r\n", capture_output=True, text=True, timeout=20)
            out = r.stdout + r.stderr
            check("Cipher is (NONE)" in out, "openssl s_client %s: a session was set up:\n%s" % (flag, out[-800:]))
            if "no protocols available" in out:
                continue  # this OpenSSL cannot even offer it: nothing reached keygate
            check("protocol version" in out, "openssl s_client %s: no protocol_version alert:\n%s" % (flag, out[-800:]))
            kg.wait_for_log(r"TLS handshake failed: protocol version not supported", 5, since=mark)
        check(up.requests() == [], "the upstream received %r" % up.requests())
        with TLSClient(kg.tls_port, client_ctx(certs)) as c:
            check(c.request("GET", "/_keygate/health").status == 200, "health over TLS after the refusals")
            check(c.sock.version() in ("TLSv1.2", "TLSv1.3"), "negotiated %s" % c.sock.version())


@timeout(60)
def test_plain_http_to_a_tls_port_is_closed_without_an_answer_and_logged():
    with Certs() as certs, Upstream() as up, tls_keygate(certs, "--require-auth=false", "--upstream", up.url) as kg:
        mark = kg.log_mark()
        with Client(kg.tls_port, timeout=5) as c:
            c.send(c.build("GET", "/plain-on-tls"))
            check(c.is_closed(5), "the connection stayed open after a plain HTTP request on the TLS port")
        kg.wait_for_log(r"client 127\.0\.0\.1: TLS handshake failed: plain HTTP on a TLS port", 5, since=mark)
        check(kg.alive(), "keygate exited")
        check(up.requests() == [], "the upstream received %r" % up.requests())
        with TLSClient(kg.tls_port, client_ctx(certs)) as c:
            check(c.request("GET", "/_keygate/health").status == 200, "health over TLS afterwards")


# ---------------------------------------------------------------- certificates

@timeout(60)
def test_sni_picks_the_certificate_whose_names_match_and_the_first_by_default():
    with Certs() as certs:
        a = certs.server("a", "a.test", sans=("DNS:a.test",))
        b = certs.server("b", "b.test", sans=("DNS:b.test", "DNS:*.b.test"))
        with tls_keygate(certs, pairs=[a, b]) as kg:
            ctx = client_ctx(certs)
            for name, want in (("a.test", "a.test"), ("b.test", "b.test"), ("x.b.test", "b.test")):
                with TLSClient(kg.tls_port, ctx, server_hostname=name) as c:
                    check(c.subject_cn() == want, "SNI %s: served %r, want %r" % (name, c.subject_cn(), want))
                    check(c.request("GET", "/_keygate/health").status == 200, "health over TLS as %s" % name)
            loose = client_ctx(certs, check_hostname=False)
            for name in ("unknown.test", None):
                with TLSClient(kg.tls_port, loose, server_hostname=name) as c:
                    check(c.subject_cn() == "a.test", "SNI %r: served %r, want the first pair (a.test)" % (name, c.subject_cn()))


def write_config(path, cert, key, tls_port):
    with open(path + ".tmp", "w") as f:
        f.write("tls:\n  listen: [\"127.0.0.1:%d\"]\n  cert: [%s]\n  key: [%s]\n"
                % (tls_port, json.dumps(cert), json.dumps(key)))
    os.replace(path + ".tmp", path)


@timeout(60)
def test_sighup_serves_a_renewed_certificate_to_new_connections_while_old_ones_keep_working():
    with Certs() as certs:
        old_cert, old_key = certs.server("old", "localhost")
        new_cert, new_key = certs.server("new", "renewed.localhost")
        live_cert, live_key = certs.path("live.pem"), certs.path("live.key")
        shutil.copy(old_cert, live_cert)
        shutil.copy(old_key, live_key)
        port = free_port()
        kg = Keygate()
        cfg = kg.path("keygate.yaml")
        write_config(cfg, live_cert, live_key, port)
        kg.args += ["--config", cfg]
        with kg, TLSClient(port, client_ctx(certs)) as early:
            check(early.subject_cn() == "localhost", "before renewal: served %r" % early.subject_cn())
            check(early.request("GET", "/_keygate/health").status == 200, "health before the renewal")
            # certbot-style: the files are replaced in place
            shutil.copy(new_cert, live_cert + ".tmp")
            os.replace(live_cert + ".tmp", live_cert)
            shutil.copy(new_key, live_key + ".tmp")
            os.replace(live_key + ".tmp", live_key)
            mark = kg.log_mark()
            kg.send_signal(signal.SIGHUP)
            kg.wait_for_log(r"configuration reloaded", 5, since=mark)
            with TLSClient(port, client_ctx(certs)) as late:
                check(late.subject_cn() == "renewed.localhost", "after SIGHUP a new connection got %r" % late.subject_cn())
                check(late.request("GET", "/_keygate/health").status == 200, "health on the new connection")
            try:
                r = early.request("GET", "/_keygate/health")
            except (ConnClosed, OSError) as e:
                raise Failure("the connection opened before SIGHUP broke: %s" % e)
            check(r.status == 200, "the old connection after SIGHUP: %d" % r.status)
            check(early.subject_cn() == "localhost", "the old connection's certificate changed")


@timeout(60)
def test_sighup_with_a_key_that_does_not_match_keeps_the_old_certificate_and_says_why():
    with Certs() as certs:
        cert, key = certs.server("cur", "localhost")
        _, other_key = certs.server("other", "other.localhost")
        live_key = certs.path("live.key")
        shutil.copy(key, live_key)
        port = free_port()
        kg = Keygate()
        cfg = kg.path("keygate.yaml")
        write_config(cfg, cert, live_key, port)
        kg.args += ["--config", cfg]
        with kg:
            shutil.copy(other_key, live_key)
            mark = kg.log_mark()
            kg.send_signal(signal.SIGHUP)
            line = kg.wait_for_log(r"reload failed", 5, since=mark)
            check("does not match" in line and live_key in line and cert in line,
                  "the reload failure does not name the mismatched pair: %r" % line)
            check(kg.alive(), "keygate exited after a broken renewal")
            with TLSClient(port, client_ctx(certs)) as c:
                check(c.subject_cn() == "localhost", "after a broken renewal: served %r" % c.subject_cn())
                check(c.request("GET", "/_keygate/health").status == 200, "health after a broken renewal")


@timeout(60)
def test_a_missing_or_broken_certificate_at_start_is_an_error_naming_the_file():
    with Certs() as certs:
        cert, key = certs.server("server", "localhost")
        broken = certs.path("broken.pem")
        with open(broken, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        for bad_cert, words in ((certs.path("missing.pem"), "No such file"), (broken, "not a PEM certificate")):
            kg = tls_keygate(certs, pairs=[(bad_cert, key)], wait=False)
            with kg:
                rc = kg.wait_exit(10)
                check(rc not in (None, 0), "keygate started (exit %r) with tls.cert %s" % (rc, bad_cert))
                err = kg.stderr_text()
                check(bad_cert in err and words in err, "the start-up error does not name %s (%s): %r"
                      % (bad_cert, words, err[-500:]))


@timeout(60)
def test_tls_listen_without_a_certificate_is_a_configuration_error():
    kg = Keygate("--tls-listen", "127.0.0.1:%d" % free_port(), wait=False)
    with kg:
        rc = kg.wait_exit(10)
        check(rc not in (None, 0), "keygate started (exit %r) with tls.listen and no certificate" % rc)
        check("tls.listen: needs a certificate" in kg.stderr_text(), "error: %r" % kg.stderr_text()[-500:])


@timeout(60)
def test_a_private_key_readable_by_others_is_a_startup_warning():
    with Certs() as certs:
        cert, key = certs.server("server", "localhost")
        os.chmod(key, 0o644)
        with tls_keygate(certs, pairs=[(cert, key)]) as kg:
            kg.wait_for_log(r"warn.*tls\.key %s can be read by every user" % key.replace(".", r"\."), 5)


# ---------------------------------------------------------------- resumption

@timeout(60)
def test_session_tickets_resume_on_any_worker():
    with Certs() as certs, tls_keygate(certs, "--workers", "2") as kg:
        ctx = client_ctx(certs)
        with TLSClient(kg.tls_port, ctx) as c:
            # TLS 1.3 tickets come after the handshake: a request brings them
            check(c.request("GET", "/_keygate/health").status == 200, "first connection")
            session = c.sock.session
            check(not c.sock.session_reused, "the first connection was resumed")
        reused = []
        for _ in range(8):
            with TLSClient(kg.tls_port, ctx, session=session) as c:
                check(c.request("GET", "/_keygate/health").status == 200, "resumed connection")
                reused.append(c.sock.session_reused)
        check(all(reused), "sessions resumed %r (8 connections over 2 workers, all should)" % reused)


# ---------------------------------------------------------------- keygate's own endpoints

@timeout(60)
def test_health_and_an_elasticsearch_api_key_work_over_tls():
    import base64
    elastic = ("Authorization", "Basic " + base64.b64encode(("elastic:" + PW).encode()).decode())
    with Certs() as certs, Upstream() as up, \
            tls_keygate(certs, "--upstream", up.url, "--admin-password", bcrypt_hash(PW)) as kg:
        ctx = client_ctx(certs)
        with TLSClient(kg.tls_port, ctx) as c:
            r = c.request("GET", "/_keygate/health")
            check(r.status == 200 and json.loads(r.body)["status"] == "ok", "health over TLS: %d %r" % (r.status, r.body[:200]))
            body = json.dumps({"name": "over-tls", "role_descriptors": {"r": {"applications": [
                {"application": "keygate", "privileges": ["GET"], "resources": ["/data/*"]}]}}}).encode()
            r = c.request("POST", "/_security/api_key", [elastic, ("Content-Type", "application/json")], body=body)
            check(r.status == 200, "create an API key over TLS: %d %r" % (r.status, r.body[:300]))
            encoded = json.loads(r.body)["encoded"]
            r = c.request("GET", "/data/x", [("Authorization", "ApiKey " + encoded)])
            check(r.status == 200, "ApiKey over TLS on a proxied route: %d %r" % (r.status, r.body[:300]))
            r = c.request("GET", "/other", [("Authorization", "ApiKey " + encoded)])
            check(r.status == 403, "ApiKey over TLS outside its privileges: %d, want 403" % r.status)
        paths = [t for _, _, t in up.requests()]
        check(paths == ["/data/x"], "upstream requests %r, want only /data/x" % paths)


# ---------------------------------------------------------------- AvalancheGo's names

@timeout(60)
def test_avalanchego_http_tls_flags_make_the_listen_address_speak_tls():
    with Certs() as certs:
        cert, key = certs.server("server", "localhost")
        kg = Keygate("--http-tls-enabled", "--http-tls-cert-file", cert, "--http-tls-key-file", key, wait=False)
        with kg:
            kg.wait_for_log(r"listening on 127\.0\.0\.1:%d \(TLS\)" % kg.port, 10)
            with TLSClient(kg.port, client_ctx(certs)) as c:
                check(c.request("GET", "/_keygate/health").status == 200, "health over TLS on the listen address")
