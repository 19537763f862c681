"""AvalancheGo's Auth API: JSON-RPC at /ext/auth, endpoint-scoped HS256 JWTs,
revocation and password changes that survive restarts."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time

from harness import Client, Keygate, Upstream, check, request, run_cli

PW = "Str0ng-Passw0rd-for-keygate-2026!"
PW2 = "An0ther-Str0ng-Passw0rd-2026?"


class Avax:
    """keygate with --api-auth-required in front of an upstream, with its own data dir."""

    def __init__(self, *extra, data=None, password=PW):
        self.tmp = tempfile.mkdtemp(prefix="keygate-avax-")
        self.pwfile = os.path.join(self.tmp, "pw")
        with open(self.pwfile, "w") as f:
            f.write(password + "\n")
        self.up = Upstream()
        self.extra = extra
        self.data = data

    def __enter__(self):
        self.up.__enter__()
        args = ["--api-auth-required", "--api-auth-password-file", self.pwfile, "--upstream", self.up.url] + list(self.extra)
        if self.data:
            args += ["--data-dir", self.data]
        self.kg = Keygate(*args)
        self.kg.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self.kg.__exit__(*exc)
        finally:
            self.up.__exit__(*exc)
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def rpc(self, method, params, id=1, ctype="application/json", headers=()):
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": id}).encode()
        return request(self.kg.port, "POST", "/ext/auth", headers=[("Content-Type", ctype)] + list(headers), body=body)

    def token(self, endpoints=("*",), password=PW):
        r = self.rpc("auth.newToken", {"password": password, "endpoints": list(endpoints)})
        j = r.json()
        check(r.status == 200 and "result" in j, "newToken: %d %r" % (r.status, j))
        return j["result"]["token"]

    def call(self, path, tok=None, method="POST"):
        h = [("Authorization", "Bearer " + tok)] if tok else []
        return request(self.kg.port, method, path, headers=h, body=b"{}" if method == "POST" else None)


def rpc_error(r, message, code=-32000, status=200):
    check(r.status == status, "HTTP %d, want %d: %r" % (r.status, status, r.body[:300]))
    j = r.json()
    check(j.get("jsonrpc") == "2.0" and isinstance(j.get("error"), dict), "not a JSON-RPC error: %r" % j)
    check(j["error"].get("code") == code and j["error"].get("message") == message,
          "error %r, want code %d message %r" % (j["error"], code, message))
    return j


def refused(r, message):
    check(r.status == 401, "protected endpoint: HTTP %d, want 401: %r" % (r.status, r.body[:200]))
    check((r.header("Content-Type") or "").startswith("application/json"), "Content-Type %r" % r.header("Content-Type"))
    j = r.json()
    check(j == {"jsonrpc": "2.0", "error": {"code": -32600, "message": message}, "id": 1},
          "body %r, want message %r" % (j, message))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def test_new_token_validation_order_and_messages():
    with Avax() as a:
        rpc_error(a.rpc("auth.newToken", {"password": "", "endpoints": ["*"]}), "no password")
        rpc_error(a.rpc("auth.newToken", {"password": PW, "endpoints": []}), "must name at least one endpoint")
        rpc_error(a.rpc("auth.newToken", {"password": PW}), "must name at least one endpoint")
        rpc_error(a.rpc("auth.newToken", {"password": PW, "endpoints": ["/e%d" % i for i in range(129)]}),
                  "can only name at most 128 endpoints")
        rpc_error(a.rpc("auth.newToken", {"password": "wrong", "endpoints": ["*"]}), "incorrect password")
        tok = a.token(["/ext/info", "*"])
        claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
        check(list(claims) == ["exp", "jti", "endpoints"] and claims["endpoints"] == ["*"], "claims %r" % claims)
        check(len(base64.urlsafe_b64decode(claims["jti"] + "=")) == 20, "jti is 20 random bytes")
        check(abs(claims["exp"] - time.time() - 12 * 3600) < 60, "lifetime is 12 h: exp %r" % claims["exp"])
        hdr = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
        check(hdr == {"alg": "HS256", "typ": "JWT"}, "header %r" % hdr)


def test_id_is_echoed_whatever_its_type():
    with Avax() as a:
        for id in (7, "seven", [1, 2], {"k": "v"}, None, 1.5):
            r = a.rpc("auth.newToken", {"password": "", "endpoints": ["*"]}, id=id)
            check(r.json().get("id") == id, "id %r came back as %r" % (id, r.json().get("id")))


def test_transport_errors():
    with Avax() as a:
        r = request(a.kg.port, "GET", "/ext/auth")
        check(r.status == 405, "GET /ext/auth: %d" % r.status)
        r = a.rpc("auth.newToken", {}, ctype="text/plain")
        check(r.status == 415, "text/plain: %d" % r.status)
        for ct in ("application/json;charset=UTF-8", "application/json;", "Application/JSON; charset=utf-8"):
            r = a.rpc("auth.newToken", {"password": "", "endpoints": ["*"]}, ctype=ct)
            rpc_error(r, "no password")
        r = request(a.kg.port, "POST", "/ext/auth", headers=[("Content-Type", "application/json")], body=b"{nope")
        check(r.json()["error"]["code"] == -32700, "parse error: %r" % r.body)
        r = request(a.kg.port, "POST", "/ext/auth", headers=[("Content-Type", "application/json")],
                    body=b'{"jsonrpc":"1.0","method":"auth.newToken","id":1}')
        check(r.json()["error"]["code"] == -32600, "invalid request: %r" % r.body)
        r = a.rpc("auth.nope", {})
        check(r.json()["error"]["code"] == -32601, "unknown method: %r" % r.body)
        r = request(a.kg.port, "POST", "/ext/auth", headers=[("Content-Type", "application/json")],
                    body=b"{" + b" " * (2 << 20) + b"}")
        check(r.status == 413, "a 2 MiB body: %d" % r.status)


def test_endpoint_rule_and_protected_route_messages():
    with Avax() as a:
        tok = a.token(["/ext/info"])
        check(a.call("/ext/info", tok).status == 200, "/ext/info with its token")
        for path in ("/ext/info/foo", "/ext/bc/X", "/foo"):
            refused(a.call(path, tok), "the provided auth token does not allow access to this endpoint")
        refused(a.call("/ext/info"), "auth token not provided")
        refused(request(a.kg.port, "POST", "/ext/info", headers=[("Authorization", "Basic abc")]),
                "couldn't parse auth token. Header \"Authorization\" should be \"Bearer TOKEN.GOES.HERE\"")
        parts = tok.split(".")
        refused(a.call("/ext/info", parts[0] + "." + parts[1] + "." + b64url(b"x" * 32)), "signature is invalid")
        check(not [q for q in a.up.requests() if q[2] != "/ext/info"], "refused requests reached the upstream")


def test_algorithm_confusion_is_refused():
    with Avax() as a:
        tok = a.token(["*"])
        claims = tok.split(".")[1]
        for alg, digest in (("HS512", hashlib.sha512), ("none", None), ("RS256", hashlib.sha256)):
            head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
            sig = b64url(hmac.new(b"k" * 32, (head + "." + claims).encode(), digest).digest()) if digest else ""
            refused(a.call("/ext/info", head + "." + claims + "." + sig),
                    "auth token didn't specify the HS256 signing method correctly")


def test_expired_token_is_refused():
    with Avax("--api-auth-token-lifetime", "1s") as a:
        tok = a.token(["*"])
        check(a.call("/ext/info", tok).status == 200, "fresh token")
        deadline = time.monotonic() + 6
        while a.call("/ext/info", tok).status == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        refused(a.call("/ext/info", tok), "token is expired")


def test_revoke_token():
    with Avax() as a:
        tok, other = a.token(["*"]), a.token(["*"])
        rpc_error(a.rpc("auth.revokeToken", {"password": PW, "token": ""}), "auth token not provided")
        rpc_error(a.rpc("auth.revokeToken", {"password": "", "token": tok}), "no password")
        rpc_error(a.rpc("auth.revokeToken", {"password": "wrong", "token": tok}), "incorrect password")
        rpc_error(a.rpc("auth.revokeToken", {"password": PW, "token": "a.b.c"}), "token is malformed: the header is not base64url JSON")
        r = a.rpc("auth.revokeToken", {"password": PW, "token": tok})
        check(r.status == 200 and r.json().get("result") == {"success": True}, "revoke: %r" % r.body)
        refused(a.call("/ext/info", tok), "the provided auth token was revoked")
        check(a.call("/ext/info", other).status == 200, "another token stays valid")


def test_change_password():
    with Avax() as a:
        old = a.token(["*"])
        def change(o, n):
            return a.rpc("auth.changePassword", {"oldPassword": o, "newPassword": n})
        rpc_error(change(PW, PW), "new password can't be same as old password")
        rpc_error(change("wrong", PW2), "incorrect password")
        rpc_error(change(PW, ""), "empty password")
        rpc_error(change(PW, "x" * 1025), "password exceeds maximum length of 1024 chars")
        rpc_error(change(PW, "password"), "password is too weak")
        r = change(PW, PW2)
        check(r.json().get("result") == {"success": True}, "change: %r" % r.body)
        refused(a.call("/ext/info", old), "signature is invalid")
        rpc_error(a.rpc("auth.newToken", {"password": PW, "endpoints": ["*"]}), "incorrect password")
        check(a.call("/ext/info", a.token(["*"], password=PW2)).status == 200, "a token under the new password")


def _keepalive_call(c, path, tok):
    return c.request("GET", path, [("Authorization", "Bearer " + tok)])


def test_a_token_used_before_is_refused_on_the_next_request_after_revoke_token():
    """Each worker caches the JWTs it verified (lib/tokcache.c): revokeToken
    must end the cached ones at once. One keep-alive connection keeps the
    requests on the worker whose cache holds the token."""
    with Avax() as a, Client(a.kg.port) as c:
        tok, other = a.token(["*"]), a.token(["*"])
        for i in range(5):
            check(_keepalive_call(c, "/ext/warm-%d" % i, tok).status == 200, "used before the revocation (%d)" % i)
            check(_keepalive_call(c, "/ext/warm-other-%d" % i, other).status == 200, "other used (%d)" % i)
        r = a.rpc("auth.revokeToken", {"password": PW, "token": tok})
        check(r.json().get("result") == {"success": True}, "revoke: %r" % r.body)
        refused(_keepalive_call(c, "/ext/after-revoke", tok), "the provided auth token was revoked")
        reached = [q for q in a.up.requests() if q[2] == "/ext/after-revoke"]
        check(not reached, "the revoked token's request reached the upstream: %r" % reached)
        for i in range(3):
            check(_keepalive_call(c, "/ext/other-%d" % i, other).status == 200, "another cached token stays valid (%d)" % i)


def test_a_token_used_before_is_refused_on_the_next_request_after_change_password():
    with Avax() as a, Client(a.kg.port) as c:
        old = a.token(["*"])
        for i in range(5):
            check(_keepalive_call(c, "/ext/warm-%d" % i, old).status == 200, "used before the change (%d)" % i)
        r = a.rpc("auth.changePassword", {"oldPassword": PW, "newPassword": PW2})
        check(r.json().get("result") == {"success": True}, "change: %r" % r.body)
        refused(_keepalive_call(c, "/ext/after-change", old), "signature is invalid")
        reached = [q for q in a.up.requests() if q[2] == "/ext/after-change"]
        check(not reached, "the old token's request reached the upstream: %r" % reached)
        new = a.token(["*"], password=PW2)
        for i in range(3):
            check(_keepalive_call(c, "/ext/new-%d" % i, new).status == 200, "a token under the new password (%d)" % i)


def test_a_cached_token_keeps_its_endpoints():
    """A cached JWT still only opens the endpoints it names."""
    with Avax() as a, Client(a.kg.port) as c:
        tok = a.token(["/ext/info"])
        for i in range(3):
            check(_keepalive_call(c, "/ext/info", tok).status == 200, "its endpoint (%d)" % i)
            r = _keepalive_call(c, "/ext/bc/X", tok)
            check(r.status == 401, "another endpoint, request %d: HTTP %d" % (i, r.status))
        reached = [q for q in a.up.requests() if q[2] == "/ext/bc/X"]
        check(not reached, "the other endpoint reached the upstream: %r" % reached)


def test_tokens_revocations_and_password_changes_survive_restarts():
    data = tempfile.mkdtemp(prefix="keygate-avax-data-")
    try:
        with Avax(data=data) as a:
            keep, revoked = a.token(["*"]), a.token(["*"])
            check(a.rpc("auth.revokeToken", {"password": PW, "token": revoked}).json().get("result"), "revoke")
        with Avax(data=data) as a:
            check(a.call("/ext/info", keep).status == 200, "a token from before the restart")
            refused(a.call("/ext/info", revoked), "the provided auth token was revoked")
            check(a.rpc("auth.changePassword", {"oldPassword": PW, "newPassword": PW2}).json().get("result"), "change")
        with Avax(data=data) as a:  # the file still says PW: it only seeds the first start
            rpc_error(a.rpc("auth.newToken", {"password": PW, "endpoints": ["*"]}), "incorrect password")
            check(a.call("/ext/info", a.token(["*"], password=PW2)).status == 200, "the changed password counts")
            refused(a.call("/ext/info", keep), "signature is invalid")
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_password_guessing_is_throttled():
    with Avax("--throttle-max-failures", "2") as a:
        for i in range(2):
            rpc_error(a.rpc("auth.newToken", {"password": "bad%d" % i, "endpoints": ["*"]}), "incorrect password")
        r = a.rpc("auth.newToken", {"password": PW, "endpoints": ["*"]})
        check(r.status == 429 and (r.header("Retry-After") or "").isdigit(), "3rd try: %d %r" % (r.status, r.headers))
        check(r.json()["error"]["code"] == -32000, "a JSON-RPC error body with the 429")


def test_startup_errors_name_the_problem():
    r = run_cli("serve", "--api-auth-required", "--listen", "127.0.0.1:1")
    check(r.returncode != 0 and "api_auth_password_file" in r.stderr, "no file: %d %s" % (r.returncode, r.stderr))
    r = run_cli("serve", "--api-auth-required", "--api-auth-password-file", "/nonexistent/pw", "--listen", "127.0.0.1:1")
    check(r.returncode != 0 and "/nonexistent/pw" in r.stderr and "cannot read" in r.stderr, "missing file: %s" % r.stderr)


def test_without_api_auth_required_ext_auth_is_proxied():
    with Upstream() as up, Keygate("--require-auth=false", "--upstream", up.url) as kg:
        r = request(kg.port, "POST", "/ext/auth", headers=[("Content-Type", "application/json")], body=b"{}")
        check(r.status == 200 and r.json().get("path") == "/ext/auth", "keygate must not serve /ext/auth: %r" % r.body[:200])


def test_forward_auth_check_with_jwts():
    tmp = tempfile.mkdtemp()
    try:
        pw = os.path.join(tmp, "pw")
        with open(pw, "w") as f:
            f.write(PW)
        with Keygate("--api-auth-required", "--api-auth-password-file", pw) as kg:
            body = json.dumps({"jsonrpc": "2.0", "method": "auth.newToken", "params": {"password": PW, "endpoints": ["/ext/info"]}, "id": 1}).encode()
            tok = request(kg.port, "POST", "/ext/auth", headers=[("Content-Type", "application/json")], body=body).json()["result"]["token"]
            ok = request(kg.port, "GET", "/_keygate/check", headers=[("X-Original-URI", "/ext/info"), ("X-Original-Method", "POST"), ("Authorization", "Bearer " + tok)])
            check(ok.status == 200 and ok.header("X-Keygate-Scheme") == "avalanche", "check allowed: %d" % ok.status)
            no = request(kg.port, "GET", "/_keygate/check", headers=[("X-Original-URI", "/ext/bc/X"), ("X-Original-Method", "POST"), ("Authorization", "Bearer " + tok)])
            refused(no, "the provided auth token does not allow access to this endpoint")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
