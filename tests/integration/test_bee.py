"""Swarm Bee's restricted APIs: /auth, /refresh, role tokens, the Bee preset,
revocation and restarts; Bee's own tests included."""
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time

from harness import Client, Keygate, Upstream, check, request, run_cli, skip, timeout, bcrypt_hash, BEE_KEY

KEY = BEE_KEY




def basic(password, user=""):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def bee(up, *extra, password="test"):
    return Keygate("--restricted", "--admin-password", bcrypt_hash(password), "--token-encryption-key", KEY,
                   "--upstream", up.url, *extra)


def bee_error(r, status, message):
    check(r.status == status, "expected %d %r, got %d %r" % (status, message, r.status, r.body[:300]))
    j = r.json()
    check(j == {"code": status, "message": message}, "Bee error body %r, want code %d message %r" % (j, status, message))


def auth(port, role="maintainer", expiry=3600, password="test", headers=()):
    body = json.dumps({"role": role, "expiry": expiry}).encode()
    return request(port, "POST", "/auth", headers=[("Authorization", basic(password)),
                                                   ("Content-Type", "application/json")] + list(headers), body=body)


def token(port, role="maintainer", expiry=3600, password="test"):
    r = auth(port, role, expiry, password)
    check(r.status == 201, "/auth %s: %d %r" % (role, r.status, r.body[:200]))
    key = r.json().get("key")
    check(isinstance(key, str) and key, "/auth answered no key: %r" % r.body)
    return key


def call(port, method, target, tok, body=None):
    return request(port, method, target, headers=[("Authorization", "Bearer " + tok)], body=body)


# ------------------------------------------------------------- Bee's own tests

def test_password_test_authorizes_and_nottest_does_not():
    with Upstream() as up, bee(up) as kg:
        r = auth(kg.port, password="test")
        check(r.status == 201, "password 'test': %d %r" % (r.status, r.body))
        r = auth(kg.port, password="notTest")
        bee_error(r, 401, "Unauthorized")
        check(r.header("WWW-Authenticate") == 'Basic realm="Restricted"', "WWW-Authenticate %r" % r.header("WWW-Authenticate"))


def test_bee_route_decisions():
    with Upstream() as up, bee(up) as kg:
        m, cr, co = token(kg.port, "maintainer"), token(kg.port, "creator"), token(kg.port, "consumer")
        r = call(kg.port, "POST", "/pingpong/someone", m)
        check(r.status == 200 and r.json()["path"] == "/pingpong/someone", "maintainer POST /pingpong/someone: %r" % r)
        r = call(kg.port, "POST", "/bzz?name=x", cr)
        check(r.status == 200 and r.json()["path"] == "/bzz?name=x", "creator POST /bzz?name=x: %r" % r)
        denied = "Provided security token does not grant access to the resource"
        bee_error(call(kg.port, "POST", "/pingpong/x", co), 403, denied)
        bee_error(call(kg.port, "POST", "/i-dont-exist", m), 403, denied)
        bee_error(call(kg.port, "DELETE", "/pingpong/someone", m), 403, denied)
        r = call(kg.port, "GET", "/v1/bytes/abc", co)
        check(r.status == 200, "consumer GET /v1/bytes/abc (optional /v1): %d" % r.status)


def test_expired_token_is_refused():
    with Upstream() as up, bee(up) as kg:
        tok = token(kg.port, "consumer", expiry=1)
        check(call(kg.port, "GET", "/bytes/x", tok).status == 200, "fresh token refused")
        deadline = time.monotonic() + 5
        while True:  # the token lives one second; poll for its end, bounded
            r = call(kg.port, "GET", "/bytes/x", tok)
            if r.status != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        bee_error(r, 401, "Token expired")


# ------------------------------------------------------------- the page's example

def test_documented_example_hello_works_verbatim():
    with Upstream() as up, bee(up, password="hello") as kg:
        body = b'{\n    "role": "maintainer",\n    "expiry": 3600\n}'
        r = request(kg.port, "POST", "/auth", headers=[("Content-Type", "application/json"),
                                                      ("Authorization", "Basic OmhlbGxv")], body=body)
        check(r.status == 201 and "key" in r.json(), "the documented example: %d %r" % (r.status, r.body))


# ------------------------------------------------------------- enforcement

def test_refusals_use_bees_messages():
    with Upstream() as up, bee(up) as kg:
        bee_error(request(kg.port, "GET", "/bytes/x"), 401, "Missing bearer token")
        bee_error(request(kg.port, "GET", "/bytes/x", headers=[("Authorization", basic("test"))]), 401,
                  "Missing bearer token")
        for garbage in ("garbage", "AAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "kg1.AAAA", "%%%"):
            bee_error(call(kg.port, "GET", "/bytes/x", garbage), 401, "Invalid token")
        check(not [q for q in up.requests() if q[2].startswith("/bytes")], "refused requests reached the upstream")


def test_unrestricted_paths_need_no_token():
    with Upstream() as up, bee(up) as kg:
        for p in ("/health", "/readiness", "/metrics", "/debug/pprof"):
            r = request(kg.port, "GET", p)
            check(r.status == 200 and r.json()["path"] == p, "%s without a token: %d" % (p, r.status))


def test_identity_goes_upstream_and_the_token_does_not():
    with Upstream() as up, bee(up) as kg:
        tok = token(kg.port, "creator")
        r = call(kg.port, "POST", "/bytes", tok, body=b"x")
        h = {k.lower(): v for k, v in r.json()["headers"]}
        check("authorization" not in h, "the consumed token was forwarded upstream")
        check(h.get("x-keygate-role") == "creator" and h.get("x-keygate-scheme") == "bee", "identity headers %r" % h)
        check(re.fullmatch(r"[0-9a-f]{32}", h.get("x-keygate-principal", "")), "principal id %r" % h.get("x-keygate-principal"))


def test_forward_auth_check_with_bee_tokens():
    with Keygate("--restricted", "--admin-password", bcrypt_hash("test"), "--token-encryption-key", KEY) as kg:
        tok = token(kg.port, "maintainer")
        r = request(kg.port, "GET", "/_keygate/check", headers=[
            ("X-Original-Method", "POST"), ("X-Original-URI", "/pingpong/peer?x=1"), ("Authorization", "Bearer " + tok)])
        check(r.status == 200 and r.header("X-Keygate-Role") == "maintainer", "check: %d %r" % (r.status, r.headers))
        r = request(kg.port, "GET", "/_keygate/check", headers=[
            ("X-Forwarded-Method", "DELETE"), ("X-Forwarded-Uri", "/pingpong/peer"), ("Authorization", "Bearer " + tok)])
        bee_error(r, 403, "Provided security token does not grant access to the resource")


# ------------------------------------------------------------- /auth and /refresh validation

def test_auth_input_validation():
    with Upstream() as up, bee(up, "--token-max-expiry", "1h") as kg:
        r = request(kg.port, "GET", "/auth", headers=[("Authorization", basic("test"))])
        bee_error(r, 405, "Method Not Allowed")
        check(r.header("Allow") == "POST", "Allow %r" % r.header("Allow"))
        r = request(kg.port, "POST", "/auth", headers=[("Authorization", basic("test"))], body=b"{" + b" " * 600 + b"}")
        check(r.status == 413, "a 600-byte body: %d" % r.status)
        for body in (b"", b"{", b"[]", b"not json"):
            bee_error(request(kg.port, "POST", "/auth", headers=[("Authorization", basic("test"))], body=body), 400,
                      "Unmarshal json body")
        for expiry in (0, -1, 1.5, "10", None):
            b = {"role": "consumer"}
            if expiry is not None:
                b["expiry"] = expiry
            r = request(kg.port, "POST", "/auth", headers=[("Authorization", basic("test"))], body=json.dumps(b).encode())
            bee_error(r, 400, "Expiry duration must be a positive number")
        r = auth(kg.port, "consumer", expiry=3601)
        check(r.status == 400 and "maximum" in r.json()["message"], "expiry above the maximum: %d %r" % (r.status, r.body))
        r = auth(kg.port, "superuser")
        check(r.status == 400, "unknown role: %d" % r.status)
        msg = r.json()["message"]
        check("superuser" in msg and "maintainer" in msg and "consumer" in msg, "unknown-role message %r" % msg)
        r = auth(kg.port, "auditor")
        check(r.status == 201, "auditor is a valid role in keygate's preset: %d" % r.status)


def test_refresh_keeps_or_lowers_the_role_never_raises_it():
    with Upstream() as up, bee(up) as kg:
        cr = token(kg.port, "creator")
        def refresh(tok, body):
            return request(kg.port, "POST", "/refresh", headers=[("Authorization", "Bearer " + tok)],
                           body=json.dumps(body).encode())
        r = refresh(cr, {"expiry": 60})
        check(r.status == 201, "refresh without a role: %d %r" % (r.status, r.body))
        new = r.json()["key"]
        check(call(kg.port, "POST", "/bytes", new, body=b"x").status == 200, "refreshed token keeps creator")
        r = refresh(cr, {"role": "consumer", "expiry": 60})
        check(r.status == 201, "refresh to a lower role: %d" % r.status)
        low = r.json()["key"]
        check(call(kg.port, "POST", "/bytes", low, body=b"x").status == 403, "lowered token must lose creator routes")
        r = refresh(cr, {"role": "maintainer", "expiry": 60})
        check(r.status == 403, "refresh to a higher role must be 403, got %d" % r.status)
        bee_error(refresh("garbage", {"expiry": 60}), 401, "Invalid token")
        r = request(kg.port, "POST", "/refresh", body=b'{"expiry":60}')
        bee_error(r, 401, "Missing bearer token")


def test_refresh_of_an_expired_token_is_401():
    with Upstream() as up, bee(up) as kg:
        tok = token(kg.port, "consumer", expiry=1)
        deadline = time.monotonic() + 5
        while True:
            r = request(kg.port, "POST", "/refresh", headers=[("Authorization", "Bearer " + tok)], body=b'{"expiry":5}')
            if r.status != 201 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        bee_error(r, 401, "Token expired")


def test_password_guessing_is_throttled_per_client():
    with Upstream() as up, bee(up, "--throttle-max-failures", "3", "--trusted-proxies", "127.0.0.1") as kg:
        mallory = [("X-Forwarded-For", "198.51.100.9")]
        for i in range(3):
            check(auth(kg.port, password="wrong%d" % i, headers=mallory).status == 401, "failure %d" % i)
        r = auth(kg.port, password="wrong", headers=mallory)
        check(r.status == 429, "4th failure from the same address: %d" % r.status)
        ra = r.header("Retry-After")
        check(ra and ra.isdigit() and 1 <= int(ra) <= 60, "Retry-After %r" % ra)
        check(auth(kg.port, password="test", headers=mallory).status == 429, "throttled address stays throttled")
        alice = [("X-Forwarded-For", "203.0.113.5")]
        check(auth(kg.port, password="test", headers=alice).status == 201, "another client must not be locked out")


# ------------------------------------------------------------- better than Bee

def test_revocation_is_persisted_and_applies_to_the_running_server():
    with Upstream() as up, bee(up) as kg:
        tok, other = token(kg.port, "consumer"), token(kg.port, "consumer")
        r = run_cli("token", "revoke", "--data-dir", kg.data_dir, "--token-encryption-key", KEY, tok)
        check(r.returncode == 0 and r.stdout.startswith("revoked "), "revoke: %d %s %s" % (r.returncode, r.stdout, r.stderr))
        deadline = time.monotonic() + 5
        while call(kg.port, "GET", "/bytes/x", tok).status == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        bee_error(call(kg.port, "GET", "/bytes/x", tok), 401, "Token revoked")
        check(call(kg.port, "GET", "/bytes/x", other).status == 200, "another token must stay valid")
        r = run_cli("token", "revoke", "--data-dir", kg.data_dir, "--all")
        check(r.returncode == 0, "revoke --all: %s" % r.stderr)
        deadline = time.monotonic() + 5
        while call(kg.port, "GET", "/bytes/x", other).status == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        bee_error(call(kg.port, "GET", "/bytes/x", other), 401, "Token revoked")
        fresh = token(kg.port, "consumer")
        check(call(kg.port, "GET", "/bytes/x", fresh).status == 200, "a token issued after revoke --all works")


def test_a_token_used_before_is_refused_as_soon_as_revoke_and_revoke_all_reach_the_server():
    """Each worker caches the tokens it opened (lib/tokcache.c): a revocation
    must reach the cached ones too. One keep-alive connection keeps the
    requests on the worker whose cache holds the token."""
    with Upstream() as up, bee(up) as kg, Client(kg.port) as c:
        tok, other = token(kg.port, "consumer"), token(kg.port, "consumer")

        def use(t, target):
            return c.request("GET", target, [("Authorization", "Bearer " + t)])

        for i in range(5):
            check(use(tok, "/bytes/warm-%d" % i).status == 200, "token used before the revocation (%d)" % i)
            check(use(other, "/bytes/warm-other-%d" % i).status == 200, "other token used (%d)" % i)

        def refused_once_seen(t, what):
            # the CLI writes the store; the server sees it on its next refresh
            deadline = time.monotonic() + 5
            while use(t, "/bytes/poll").status == 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            target = "/bytes/after-" + what
            bee_error(use(t, target), 401, "Token revoked")
            reached = [r for r in up.requests() if r[2] == target]
            check(not reached, "a request with the %s token reached the upstream: %r" % (what, reached))

        r = run_cli("token", "revoke", "--data-dir", kg.data_dir, "--token-encryption-key", KEY, tok)
        check(r.returncode == 0, "revoke: %d %s" % (r.returncode, r.stderr))
        refused_once_seen(tok, "revoke")
        for i in range(3):
            check(use(other, "/bytes/other-%d" % i).status == 200, "another cached token stays valid (%d)" % i)
        r = run_cli("token", "revoke", "--data-dir", kg.data_dir, "--all")
        check(r.returncode == 0, "revoke --all: %s" % r.stderr)
        refused_once_seen(other, "revoke-all")
        fresh = token(kg.port, "consumer")
        for i in range(3):
            check(use(fresh, "/bytes/fresh-%d" % i).status == 200, "a token issued after revoke --all works (%d)" % i)


def test_generated_secrets_survive_restarts_and_the_password_is_shown_once():
    data = tempfile.mkdtemp(prefix="keygate-bee-")
    try:
        with Upstream() as up:
            with Keygate("--restricted", "--upstream", up.url, "--data-dir", data) as kg:
                m = re.search(r"^\s{4}(\S{24})\s*$", kg.stderr_text(), re.M)
                check(m, "no generated admin password on stderr")
                password = m.group(1)
                tok = token(kg.port, "consumer", password=password)
            with Keygate("--restricted", "--upstream", up.url, "--data-dir", data) as kg:
                check(password not in kg.stderr_text(), "the generated password was printed again")
                check(call(kg.port, "GET", "/bytes/x", tok).status == 200, "a token from before the restart")
                check(auth(kg.port, "consumer", password=password).status == 201, "the password after a restart")
            db = open(os.path.join(data, "keygate.db"), "rb").read()
            check(password.encode() not in db, "the plain admin password is in the store")
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_malformed_admin_hash_is_a_startup_error():
    r = run_cli("serve", "--restricted", "--admin-password", "not-a-hash", "--listen", "127.0.0.1:1")
    check(r.returncode != 0 and "admin_password" in r.stderr and "bcrypt" in r.stderr, "exit %d: %s" % (r.returncode, r.stderr))


def test_rotated_keys_still_open_old_tokens():
    with Upstream() as up:
        with bee(up) as kg:
            old = token(kg.port, "consumer")
        with Keygate("--restricted", "--admin-password", bcrypt_hash("test"), "--token-encryption-key", "new-key",
                     "--token-encryption-key", KEY, "--upstream", up.url) as kg:
            check(call(kg.port, "GET", "/bytes/x", old).status == 200, "token under the old (second) key")
        with Keygate("--restricted", "--admin-password", bcrypt_hash("test"), "--token-encryption-key", "new-key",
                     "--upstream", up.url) as kg:
            bee_error(call(kg.port, "GET", "/bytes/x", old), 401, "Invalid token")


# ------------------------------------------------------------- Bee token format

def node():
    return shutil.which("node")


def bee_token_tool(*args):
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.run([node(), os.path.join(here, "..", "compat", "bee_token.mjs")] + list(args),
                          capture_output=True, text=True, timeout=20)


def test_bee_format_tokens_interoperate_with_an_independent_implementation():
    if not node():
        skip("node is not installed (tools/deps.sh --tests installs it)")
    with Upstream() as up, bee(up, "--token-format", "bee") as kg:
        tok = token(kg.port, "creator")
        r = bee_token_tool("open", KEY, tok)
        check(r.returncode == 0, "node could not open keygate's Bee-format token: %s" % r.stderr)
        plain = json.loads(r.stdout)
        check(list(plain) == ["r", "e"] and plain["r"] == "creator", "plaintext %r" % r.stdout)
        r = bee_token_tool("mint", KEY, "maintainer", "2099-01-01T00:00:00.5+02:00")
        check(r.returncode == 0, "node mint: %s" % r.stderr)
        check(call(kg.port, "POST", "/pingpong/x", r.stdout.strip()).status == 200, "a Node-minted Bee token refused")
        r = bee_token_tool("mint", "some-other-key", "maintainer", "2099-01-01T00:00:00Z")
        bee_error(call(kg.port, "POST", "/pingpong/x", r.stdout.strip()), 401, "Invalid token")


def test_keys_pasted_from_bee_yaml_and_env_vars_work():
    with Upstream() as up:
        tmp = tempfile.mkdtemp(prefix="keygate-beeyaml-")
        try:
            path = os.path.join(tmp, "keygate.yaml")
            with open(path, "w") as f:
                f.write("# pasted from bee.yaml\nrestricted: true\nadmin-password: \"%s\"\ntoken-encryption-key: %s\n"
                        "upstream: %s\n" % (bcrypt_hash("test"), KEY, up.url))
            with Keygate("--config", path) as kg:
                check(auth(kg.port).status == 201, "/auth with the keys pasted from bee.yaml")
            env = {"KEYGATE_RESTRICTED": "true", "KEYGATE_ADMIN_PASSWORD": bcrypt_hash("test"),
                   "KEYGATE_TOKEN_ENCRYPTION_KEY": KEY, "KEYGATE_UPSTREAM": up.url}
            with Keygate(env=env) as kg:
                tok = token(kg.port, "consumer")
                check(call(kg.port, "GET", "/bytes/x", tok).status == 200, "configured from KEYGATE_* variables")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def health(port):
    r = request(port, "GET", "/_keygate/health")
    check(r.status == 200, "health: %d %r" % (r.status, r.body[:200]))
    jobs = r.json()["password_jobs"]
    check(isinstance(jobs.pop("hashes"), int), "health counts bcrypt computations")
    check(jobs.pop("joined") == 0, "Bee /auth checks never join one another")
    return jobs


@timeout(120)
def test_password_checks_run_one_at_a_time_per_worker_and_abandoned_ones_are_skipped():
    # a slow hash (cost 13) so the jobs overlap; the throttle is off so every
    # wrong password costs a bcrypt
    slow_hash = bcrypt_hash("slow-secret", cost=13)
    with Upstream() as up, Keygate("--restricted", "--admin-password", slow_hash, "--token-encryption-key", KEY,
                                   "--upstream", up.url, "--workers", "1", "--throttle-max-failures", "1000",
                                   "--limits-password-jobs", "1", "--log-level", "debug") as kg:
        check(health(kg.port) == {"running": 0, "waiting": 0}, "idle: no password jobs")
        body = json.dumps({"role": "consumer", "expiry": 60}).encode()
        clients = []
        for i in range(5):
            cl = Client(kg.port, timeout=60)
            cl.send(cl.build("POST", "/auth", headers=[("Authorization", basic("wrong-%d" % i)),
                                                       ("Content-Type", "application/json")], body=body))
            clients.append(cl)
        # the five wait in line behind one running job
        seen_waiting = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = health(kg.port)
            check(jobs["running"] <= 1, "at most one bcrypt at a time with password_jobs=1: %r" % jobs)
            seen_waiting = max(seen_waiting, jobs["waiting"])
            if jobs["waiting"] >= 3:
                break
            time.sleep(0.02)
        check(seen_waiting >= 3, "requests beyond the cap wait their turn (saw at most %d waiting)" % seen_waiting)
        # two clients give up (reset) while waiting: their hashes are skipped
        mark = kg.log_mark()
        for cl in clients[3:]:
            cl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            cl.close()
        for cl in clients[:3]:
            r = cl.read_response("POST")
            bee_error(r, 401, "Unauthorized")
            cl.close()
        deadline = time.monotonic() + 30
        while health(kg.port) != {"running": 0, "waiting": 0} and time.monotonic() < deadline:
            time.sleep(0.05)
        check(health(kg.port) == {"running": 0, "waiting": 0}, "the queue drains: %r" % health(kg.port))
        kg.wait_for_log(r"password job skipped: the client left", since=mark)
        # the right password still works after the line cleared
        r = auth(kg.port, role="consumer", password="slow-secret")
        check(r.status == 201, "the right password after the burst: %d %r" % (r.status, r.body[:200]))
        check(request(kg.port, "GET", "/health").status == 200, "the server is still serving")


@timeout(120)
def test_password_checks_beyond_the_queue_get_503_with_retry_after():
    slow_hash = bcrypt_hash("slow-secret", cost=13)
    with Upstream() as up, Keygate("--restricted", "--admin-password", slow_hash, "--token-encryption-key", KEY,
                                   "--upstream", up.url, "--workers", "1", "--throttle-max-failures", "1000",
                                   "--limits-password-queue", "2") as kg:
        body = json.dumps({"role": "consumer", "expiry": 60}).encode()
        clients = []
        for i in range(3):  # one runs, two wait
            cl = Client(kg.port, timeout=60)
            cl.send(cl.build("POST", "/auth", headers=[("Authorization", basic("wrong-%d" % i))], body=body))
            clients.append(cl)
        deadline = time.monotonic() + 30
        while health(kg.port)["waiting"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        check(health(kg.port) == {"running": 1, "waiting": 2}, "queue full: %r" % health(kg.port))
        r = auth(kg.port, role="consumer", password="slow-secret")
        bee_error(r, 503, "Too many password checks in progress; retry later")
        check(r.header("Retry-After") == "1", "503 says when to retry: %r" % r.header("Retry-After"))
        for cl in clients:
            bee_error(cl.read_response("POST"), 401, "Unauthorized")
            cl.close()
        kg.wait_for_log(r"password checks waiting \(limits.password_queue\): refusing 127.0.0.1")
