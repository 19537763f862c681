"""HTTP Basic users on proxied routes (--basic-users): bcrypt off the event
loop once, then the credential cache; refusals, throttle, bodies, pipelining,
forward-auth, reload and start-up errors."""
import base64
import hashlib
import os
import re
import signal
import time

from harness import Client, Keygate, Upstream, check, request, run_cli, bcrypt_hash





def basic(user, password):
    return ("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode())


def users_file(kg, text):
    path = kg.path("users")
    with open(path, "w") as f:
        f.write(text)
    return path


USERS = lambda: ("# who may call the API\n"  # noqa: E731
                 "alice:%s:creator\n"
                 "ops:%s:maintainer,auditor\n" % (bcrypt_hash("alice-pw"), bcrypt_hash("ops pw: with colons")))


def basic_kg(up, *extra, users=None, **kw):
    kg = Keygate("--policy", "bee", "--upstream", up.url, *extra, **kw)
    kg.args += ["--basic-users", users_file(kg, users or USERS())]
    return kg


def headers_of(r):
    return {k.lower(): v for k, v in r.json()["headers"]}


def test_a_basic_user_reaches_the_upstream_with_its_identity_and_not_its_password():
    with Upstream() as up, basic_kg(up) as kg:
        r = request(kg.port, "POST", "/bytes", [basic("alice", "alice-pw")], body=b"hello")
        check(r.status == 200, "alice (creator) may POST /bytes: %d %r" % (r.status, r.body[:200]))
        h = headers_of(r)
        check(h.get("x-keygate-scheme") == "basic" and h.get("x-keygate-principal") == "alice" and
              h.get("x-keygate-role") == "creator", "identity headers %r" % h)
        check("authorization" not in h, "the password went upstream")
        check(r.json()["body_sha256"] == hashlib.sha256(b"hello").hexdigest(), "the body arrived whole")
        r = request(kg.port, "GET", "/stake", [basic("ops", "ops pw: with colons")])
        check(r.status == 200, "ops (maintainer) may GET /stake; a password may hold ':' and ' ': %d" % r.status)
        r = request(kg.port, "GET", "/stake", [basic("alice", "alice-pw")])
        check(r.status == 403, "alice (creator) may not GET /stake: %d" % r.status)


def test_the_second_request_is_served_from_the_cache():
    with Upstream() as up, basic_kg(up, "--log-level", "debug") as kg, Client(kg.port) as c:
        mark = kg.log_mark()
        for i in range(5):
            r = c.request("GET", "/bytes/%d" % i, [basic("alice", "alice-pw")])
            check(r.status == 200, "request %d: %d" % (i, r.status))
        text = kg.stderr_text()[mark:]
        n = len(re.findall(r"basic: password check off the loop", text))
        check(n == 1, "one bcrypt check for five requests with the same credential, saw %d" % n)


def hashes(port):
    return request(port, "GET", "/_keygate/health").json()["password_jobs"]["hashes"]


def herd(kg, n, credential):
    """n connections send one request each with credential, all before the
    first check ends; returns the clients once n - 1 joined that check."""
    clients = [Client(kg.port) for _ in range(n)]
    for i, c in enumerate(clients):
        c.send(c.build("GET", "/bytes/herd%d" % i, [credential]))
    deadline = time.monotonic() + 10
    while request(kg.port, "GET", "/_keygate/health").json()["password_jobs"]["joined"] < n - 1:
        check(time.monotonic() < deadline, "the %d requests never joined one check" % n)
        time.sleep(0.01)
    return clients


def test_many_connections_with_one_new_credential_cost_one_bcrypt():
    # cost 12: the first check is still running when the others arrive; they
    # join it (one guess, one throttle slot), so twenty connections from one
    # address pass with the default throttle.max_failures of 5
    users = "ops:%s:maintainer\n" % bcrypt_hash("ops pw: with colons", cost=12)
    with Upstream() as up, basic_kg(up, users=users) as kg:
        before = hashes(kg.port)
        clients = herd(kg, 20, basic("ops", "ops pw: with colons"))
        for i, c in enumerate(clients):
            r = c.read_response()
            check(r.status == 200, "connection %d: %d %r" % (i, r.status, r.body[:200]))
            c.close()
        check(hashes(kg.port) - before == 1, "one bcrypt for twenty requests, saw %d" % (hashes(kg.port) - before))
        r = request(kg.port, "GET", "/bytes/x", [basic("ops", "wrong")])
        check(r.status == 401 and hashes(kg.port) - before == 2, "a wrong password still costs its own bcrypt")


def test_one_wrong_credential_on_many_connections_is_one_guess():
    users = "ops:%s:maintainer\n" % bcrypt_hash("ops pw: with colons", cost=12)
    with Upstream() as up, basic_kg(up, users=users) as kg:
        before = hashes(kg.port)
        clients = herd(kg, 20, basic("ops", "not it"))
        for i, c in enumerate(clients):
            r = c.read_response()
            check(r.status == 401, "connection %d: %d %r" % (i, r.status, r.body[:200]))
            c.close()
        check(hashes(kg.port) - before == 1, "one bcrypt for the twenty, saw %d" % (hashes(kg.port) - before))
        # the twenty counted as one failure: four more guesses are checked, the next is throttled
        for i in range(4):
            r = request(kg.port, "GET", "/bytes/x", [basic("ops", "guess %d" % i)])
            check(r.status == 401, "guess %d after the herd: %d, want 401" % (i, r.status))
        r = request(kg.port, "GET", "/bytes/x", [basic("ops", "guess 5")])
        check(r.status == 429, "the sixth guess: %d, want 429" % r.status)
        check(not [q for q in up.requests() if q[2].startswith("/bytes/")], "a refused request reached the upstream")


def test_wrong_passwords_are_401_with_a_basic_challenge_and_the_connection_stays():
    with Upstream() as up, basic_kg(up) as kg, Client(kg.port) as c:
        for who in (("alice", "wrong"), ("mallory", "alice-pw"), ("ops", "alice-pw")):
            r = c.request("GET", "/bytes/x", [basic(*who)])
            check(r.status == 401, "%s: %d" % (who[0], r.status))
            check(r.json() == {"code": 401, "message": "wrong user name or password"}, "body %r" % r.body)
            check(r.header("WWW-Authenticate") == 'Basic realm="keygate", charset="UTF-8"',
                  "challenge %r" % r.header("WWW-Authenticate"))
        r = c.request("GET", "/bytes/x", [("Authorization", "Basic !!!")])
        check(r.status == 401 and "malformed Basic credential" in r.json()["message"], "malformed: %r" % r.body)
        r = c.request("GET", "/bytes/x")
        check(r.status == 401 and r.header("WWW-Authenticate") == 'Basic realm="keygate", charset="UTF-8"',
              "no credential: %d %r" % (r.status, r.header("WWW-Authenticate")))
        check(c.request("GET", "/bytes/y", [basic("alice", "alice-pw")]).status == 200, "same connection, right pw")
        check(not [q for q in up.requests() if q[2] == "/bytes/x"], "a refused request reached the upstream")


def test_a_refused_request_with_a_body_is_answered_and_closed_unread():
    with Upstream() as up, basic_kg(up) as kg, Client(kg.port) as c:
        c.send(c.build("PUT", "/bytes/big", [basic("alice", "wrong"), ("Content-Length", "1000000")]))
        r = c.read_response("PUT")
        check(r.status == 401, "wrong password with a pending body: %d" % r.status)
        check(r.header("Connection") == "close", "the unread body ends the connection")
        check(c.is_closed(), "connection closed")
        check(not up.requests(), "nothing reached the upstream")


def test_pipelined_requests_behind_a_password_check_are_answered_in_order():
    with Upstream() as up, basic_kg(up) as kg, Client(kg.port) as c:
        raw = b"".join(c.build("GET", "/bytes/p%d" % i, [basic("alice", "alice-pw")]) for i in range(3))
        c.send(raw + c.build("POST", "/bytes", [basic("alice", "alice-pw")], body=b"tail"))
        for i in range(3):
            r = c.read_response()
            check(r.status == 200 and r.json()["path"] == "/bytes/p%d" % i, "pipelined %d: %d %r" % (i, r.status, r.body[:100]))
        r = c.read_response("POST")
        check(r.status == 200 and r.json()["body_len"] == 4, "the POST behind them: %d %r" % (r.status, r.body[:100]))


def test_guessing_is_throttled_per_client_address():
    with Upstream() as up, basic_kg(up, "--throttle-max-failures", "3", "--trusted-proxies", "127.0.0.1") as kg:
        mallory = [("X-Forwarded-For", "203.0.113.9")]
        for i in range(3):
            r = request(kg.port, "GET", "/bytes/x", [basic("alice", "guess%d" % i)] + mallory)
            check(r.status == 401, "guess %d: %d" % (i, r.status))
        r = request(kg.port, "GET", "/bytes/x", [basic("alice", "alice-pw")] + mallory)
        check(r.status == 429, "the fourth attempt from that address is throttled, even a right one: %d" % r.status)
        check(re.fullmatch(r"[1-9][0-9]*", r.header("Retry-After") or ""), "Retry-After %r" % r.header("Retry-After"))
        check("too many failed attempts" in r.json()["message"], "message %r" % r.body)
        r = request(kg.port, "GET", "/bytes/x", [basic("alice", "alice-pw"), ("X-Forwarded-For", "198.51.100.7")])
        check(r.status == 200, "another address is not throttled: %d" % r.status)
        # now verified and cached: the throttled address may use it too (no bcrypt is asked for)
        r = request(kg.port, "GET", "/bytes/x", [basic("alice", "alice-pw")] + mallory)
        check(r.status == 200, "a credential already verified passes from a throttled address: %d" % r.status)
        r = request(kg.port, "GET", "/bytes/x", [basic("alice", "guess9")] + mallory)
        check(r.status == 429, "new guesses from it stay throttled: %d" % r.status)


def test_forward_auth_check_with_basic_users():
    with Upstream() as up, basic_kg(up) as kg:
        nginx = [("X-Original-Method", "POST"), ("X-Original-URI", "/bytes?x=1")]
        r = request(kg.port, "GET", "/_keygate/check", [basic("alice", "alice-pw")] + nginx)
        check(r.status == 200 and r.header("X-Keygate-Principal") == "alice" and
              r.header("X-Keygate-Role") == "creator", "check: %d %r" % (r.status, r.raw_head))
        r = request(kg.port, "GET", "/_keygate/check", [basic("alice", "nope")] + nginx)
        check(r.status == 401, "check with a wrong password: %d" % r.status)
        r = request(kg.port, "GET", "/_keygate/check", [basic("alice", "alice-pw"),
                                                        ("X-Original-Method", "GET"), ("X-Original-URI", "/stake")])
        check(r.status == 403, "check of a route above alice's role: %d" % r.status)


def test_sighup_rereads_the_users_file_and_forgets_cached_credentials():
    with Upstream() as up:
        kg = basic_kg(up)
        with kg:
            check(request(kg.port, "GET", "/bytes/a", [basic("alice", "alice-pw")]).status == 200, "before")
            with open(kg.path("users"), "w") as f:
                f.write("alice:%s:consumer\nbob:%s:consumer\n" % (bcrypt_hash("new-pw"), bcrypt_hash("bob-pw")))
            mark = kg.log_mark()
            kg.send_signal(signal.SIGHUP)
            kg.wait_for_log(r"reloaded", 5, since=mark)
            check(request(kg.port, "GET", "/bytes/a", [basic("alice", "alice-pw")]).status == 401,
                  "the old password no longer works, cached or not")
            check(request(kg.port, "GET", "/bytes/a", [basic("alice", "new-pw")]).status == 200, "the new one does")
            check(request(kg.port, "GET", "/bytes/a", [basic("bob", "bob-pw")]).status == 200, "a new user")
            # a broken file on reload is reported and the running users stay
            with open(kg.path("users"), "w") as f:
                f.write("carol:not-a-hash:consumer\n")
            mark = kg.log_mark()
            kg.send_signal(signal.SIGHUP)
            kg.wait_for_log(r"reload failed: basic_users: .*users:1: user 'carol': not a bcrypt hash", 5, since=mark)
            check(request(kg.port, "GET", "/bytes/a", [basic("bob", "bob-pw")]).status == 200,
                  "the previous users still work after a bad reload")


def test_bad_users_files_stop_the_start_with_file_and_line():
    with Upstream() as up:
        cases = [
            ("alice:%s:wizard\n" % bcrypt_hash("x"), r"users:1: user 'alice': role 'wizard' is not in the policy"),
            ("alice:{SHA}abc=:creator\n", r"users:1: user 'alice': not a bcrypt hash"),
            ("# nobody\n", r"users: no users"),
        ]
        for text, want in cases:
            kg = basic_kg(up, users=text, wait=False)
            with kg:
                rc = kg.wait_exit(10)
                check(rc != 0, "keygate started with a bad users file %r" % text)
                check(re.search(want, kg.stderr_text()), "stderr %r lacks /%s/" % (kg.stderr_text()[-300:], want))
        kg = Keygate("--upstream", up.url, "--basic-users", "/nonexistent/users", wait=False)
        with kg:
            check(kg.wait_exit(10) != 0, "a missing users file is a start-up error")
            check("/nonexistent/users: cannot read" in kg.stderr_text(), "names the file: %r" % kg.stderr_text()[-300:])
