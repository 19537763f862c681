"""The password throttle counts a guess when it starts, not when its bcrypt
ends: parallel wrong passwords from one address get no more checks than
sequential ones (Bee /auth, Avalanche auth.*, HTTP Basic users), and nobody
else is held up by such a flood."""
import base64
import json
import re
import time

from harness import (Client, Keygate, Upstream, check, request, run_cli, timeout,
                     bcrypt_hash as harness_bcrypt_hash, BEE_KEY)
from test_avalanche import PW, Avax

FLOOD = 30
MAX = 5
MALLORY = ("X-Forwarded-For", "203.0.113.9")
ALICE = ("X-Forwarded-For", "198.51.100.7")
KEY = BEE_KEY
# cost 12 (~0.2 s a check, one at a time per worker): the whole flood is
# parsed long before the first check ends, so counting at the end would let
# every guess through
SLOW_COST = 12



def bcrypt_hash(plain, cost=SLOW_COST):
    return harness_bcrypt_hash(plain, cost)


def basic(user, password):
    return ("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode())


def hashes(port):
    r = request(port, "GET", "/_keygate/health")
    check(r.status == 200, "health: %d %r" % (r.status, r.body[:200]))
    return r.json()["password_jobs"]["hashes"]


def flood_send(port, requests):
    """Opens one connection per request, then sends every request before
    reading any answer. requests: (method, target, headers, body) tuples."""
    clients = [Client(port, timeout=60) for _ in requests]
    wires = [c.build(*rq) for c, rq in zip(clients, requests)]
    for c, w in zip(clients, wires):
        c.send(w)
    return clients


def flood_read(clients, method):
    answers = []
    for c in clients:
        answers.append(c.read_response(method))
        c.close()
    return answers


def check_throttled(answers, is_wrong_password, what):
    """At most MAX answers are the password check's, the rest 429 with Retry-After."""
    checked = [r for r in answers if r.status != 429]
    check(all(is_wrong_password(r) for r in checked),
          "%s: answers neither a wrong password nor 429: %r" % (what, [(r.status, r.body[:120]) for r in checked
                                                                     if not is_wrong_password(r)]))
    check(1 <= len(checked) <= MAX, "%s: %d of %d parallel guesses were checked, at most %d may be"
          % (what, len(checked), len(answers), MAX))
    for r in answers:
        if r.status == 429:
            ra = r.header("Retry-After") or ""
            check(re.fullmatch(r"[1-9][0-9]*", ra), "%s: 429 without a usable Retry-After: %r" % (what, ra))


def check_hashes(port, before, what, honest=0):
    """The guesses cost at most MAX bcrypt computations (besides honest ones)."""
    spent = hashes(port) - before - honest
    check(spent <= MAX, "%s: %d bcrypt computations for %d guesses, at most %d" % (what, spent, FLOOD, MAX))


def bee(up, *extra):
    return Keygate("--restricted", "--admin-password", bcrypt_hash("test"), "--token-encryption-key", KEY,
                   "--upstream", up.url, "--throttle-max-failures", str(MAX), "--trusted-proxies", "127.0.0.1",
                   *extra)


def bee_auth(password, who):
    body = json.dumps({"role": "consumer", "expiry": 60}).encode()
    return ("POST", "/auth", [("Authorization", "Basic " + base64.b64encode((":" + password).encode()).decode()),
                              ("Content-Type", "application/json"), who], body)


@timeout(120)
def test_parallel_wrong_passwords_to_bee_auth_get_no_more_checks_than_the_throttle_allows():
    with Upstream() as up, bee(up) as kg:
        before = hashes(kg.port)
        clients = flood_send(kg.port, [bee_auth("wrong-%d" % i, MALLORY) for i in range(FLOOD)])
        # another address gets through while the flood is being answered
        t0 = time.monotonic()
        r = request(kg.port, *bee_auth("test", ALICE), timeout=20)
        check(r.status == 201 and "key" in r.json(), "alice during the flood: %d %r (after %.1f s)"
              % (r.status, r.body[:200], time.monotonic() - t0))
        answers = flood_read(clients, "POST")
        check_throttled(answers, lambda r: r.status == 401 and r.json() == {"code": 401, "message": "Unauthorized"},
                        "/auth")
        check_hashes(kg.port, before, "/auth", honest=1)
        r = request(kg.port, *bee_auth("test", MALLORY))
        check(r.status == 429, "the flooding address stays throttled, even with the right password: %d" % r.status)


def basic_kg(up, kg_extra=(), users=None):
    kg = Keygate("--policy", "bee", "--upstream", up.url, "--throttle-max-failures", str(MAX),
                 "--trusted-proxies", "127.0.0.1", *kg_extra)
    path = kg.path("users")
    with open(path, "w") as f:
        f.write(users or "alice:%s:creator\n" % bcrypt_hash("alice-pw"))
    kg.args += ["--basic-users", path]
    return kg


def is_basic_refusal(r):
    return r.status == 401 and r.json() == {"code": 401, "message": "wrong user name or password"}


@timeout(120)
def test_parallel_wrong_basic_passwords_get_no_more_checks_than_the_throttle_allows():
    with Upstream() as up, basic_kg(up) as kg:
        before = hashes(kg.port)
        clients = flood_send(kg.port, [("GET", "/bytes/flood%d" % i, [basic("alice", "guess%d" % i), MALLORY], None)
                                       for i in range(FLOOD)])
        t0 = time.monotonic()
        r = request(kg.port, "GET", "/bytes/alice", [basic("alice", "alice-pw"), ALICE], timeout=20)
        check(r.status == 200, "alice during the flood: %d %r (after %.1f s)"
              % (r.status, r.body[:200], time.monotonic() - t0))
        answers = flood_read(clients, "GET")
        check_throttled(answers, is_basic_refusal, "Basic")
        check_hashes(kg.port, before, "Basic", honest=1)
        check(not [q for q in up.requests() if "flood" in q[2]], "a guess reached the upstream")


@timeout(120)
def test_parallel_unknown_basic_user_names_are_throttled_alike():
    with Upstream() as up, basic_kg(up) as kg:
        before = hashes(kg.port)
        clients = flood_send(kg.port, [("GET", "/bytes/flood%d" % i, [basic("nobody%d" % i, "alice-pw"), MALLORY],
                                        None) for i in range(FLOOD)])
        answers = flood_read(clients, "GET")
        check_throttled(answers, is_basic_refusal, "unknown names")
        check_hashes(kg.port, before, "unknown names")
        r = request(kg.port, "GET", "/bytes/x", [basic("alice", "alice-pw"), MALLORY])
        check(r.status == 429, "the address that tried names is throttled for known ones too: %d" % r.status)


def rpc_wire(method, params, who):
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 7}).encode()
    return ("POST", "/ext/auth", [("Content-Type", "application/json"), who], body)


def is_rpc_wrong_password(r):
    return r.status == 200 and r.json().get("error", {}).get("message") == "incorrect password"


@timeout(120)
def test_parallel_wrong_passwords_to_avalanche_get_no_more_checks_than_the_throttle_allows():
    with Avax("--throttle-max-failures", str(MAX), "--trusted-proxies", "127.0.0.1") as x:
        port = x.kg.port
        before = hashes(port)
        # the three password methods share one count
        methods = [("auth.newToken", lambda i: {"password": "wrong-%d" % i, "endpoints": ["*"]}),
                   ("auth.revokeToken", lambda i: {"password": "wrong-%d" % i, "token": "a.b.c"}),
                   ("auth.changePassword", lambda i: {"oldPassword": "wrong-%d" % i, "newPassword": PW + "x"})]
        clients = flood_send(port, [rpc_wire(methods[i % 3][0], methods[i % 3][1](i), MALLORY)
                                    for i in range(FLOOD)])
        t0 = time.monotonic()
        r = request(port, *rpc_wire("auth.newToken", {"password": PW, "endpoints": ["*"]}, ALICE), timeout=20)
        check(r.status == 200 and "token" in r.json().get("result", {}), "alice during the flood: %d %r (after %.1f s)"
              % (r.status, r.body[:200], time.monotonic() - t0))
        answers = flood_read(clients, "POST")
        check_throttled(answers, is_rpc_wrong_password, "Avalanche")
        for r in answers:
            if r.status == 429:
                e = r.json().get("error", {})
                check(e.get("code") == -32000 and "too many failed password attempts" in e.get("message", ""),
                      "a throttled call answers a JSON-RPC error: %r" % r.body[:200])
        check_hashes(port, before, "Avalanche", honest=1)


def test_avalanche_refuses_a_token_with_an_empty_endpoint():
    # every path ends with "": such a token would open every route
    with Avax() as x:
        before = hashes(x.kg.port)
        for eps in ([""], ["/ext/info", ""]):
            r = x.rpc("auth.newToken", {"password": PW, "endpoints": eps})
            j = r.json()
            check(r.status == 200 and "result" not in j, "endpoints %r: a token was issued: %r" % (eps, j))
            check(j.get("error", {}).get("code") == -32000 and "endpoint can't be empty" in j["error"]["message"],
                  "endpoints %r: %r" % (eps, j))
        check(hashes(x.kg.port) == before, "refused before any password check")
        tok = x.token(["/ext/info"])
        check(x.call("/ext/info", tok).status == 200 and x.call("/ext/bc/X", tok).status == 401,
              "a named endpoint still scopes its token")
