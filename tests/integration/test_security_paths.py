"""The path keygate judges is the path it forwards (issue 11, items 1, 2, 9,
10): request targets are normalised once (include/keygate/path.h) and the
policy, the schemes and the upstream all see that one path; targets that
cannot be normalised safely are refused with 400 before anything is judged.
Also the request line's HTTP version (505) and the Host header (400).

Each case is sent byte for byte on a raw socket (no client library gets a
chance to clean the target first), and the recording upstream says what,
if anything, reached it."""
from harness import Client, ConnClosed, Failure, Keygate, Upstream, check, expect_error, request
from test_bee import bee, token


def raw(port, target, tok=None, method=b"GET", version=b"HTTP/1.1", host=b"x.test", extra=b"", body=None):
    """Sends one request with exactly these target bytes; returns the Response."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    head = method + b" " + target + b" " + version + b"\r\n"
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    if tok:
        head += b"Authorization: Bearer " + tok.encode() + b"\r\n"
    if body is not None:
        head += b"Content-Length: %d\r\n" % len(body)
    head += extra + b"Connection: close\r\n\r\n" + (body or b"")
    with Client(port, timeout=10) as c:
        c.send(head)
        try:
            return c.read_response(method.decode())
        except ConnClosed:
            raise Failure("%r: connection closed without a response" % target)


# ---------------------------------------------------------------- the table
#
# Each row: (request target as sent, role of the bearer token or None, expectation)
#   refused(words)                refused 400 with a JSON error whose message names the problem
#                                 (contains each of words); the upstream receives nothing
#   cleaned(path, status)         cleaned to path, then judged: status is what the judgement gives
#                                 (401 no token, 403 insufficient token); the upstream receives nothing
#   forwarded(path)               cleaned to path, then allowed: the upstream receives exactly path

def refused(*words):
    """Refused 400; the JSON message names the problem with each of words."""
    return ("refused 400", words)


REFUSED = refused()


def cleaned(path, status):
    return ("cleaned then refused", path, status)


def forwarded(path):
    return ("cleaned then forwarded", path)


# Bee restricted mode: /debug/*, /health, /readiness, /metrics are unrestricted
# (unrestricted_paths); /stamps is GET for maintainer only (lib/preset_bee.c);
# /bytes/* is GET for consumer and above; /v1 is an optional prefix.
BEE_CASES = [
    # dot segments and merged slashes cannot climb out of a public prefix
    ("/debug/../stamps", None, cleaned("/stamps", 401)),
    ("/debug/%2e%2e/stamps", None, cleaned("/stamps", 401)),
    ("/debug/%2E%2E/stamps", None, cleaned("/stamps", 401)),
    ("/debug/.%2e/stamps", None, cleaned("/stamps", 401)),
    ("/debug/%2e./stamps", None, cleaned("/stamps", 401)),
    ("/v1/debug/../../v1/stamps", None, cleaned("/v1/stamps", 401)),
    ("http://x/debug/../stamps", None, cleaned("/stamps", 401)),
    ("http://x/debug/%2e%2e/stamps", None, cleaned("/stamps", 401)),
    ("/debug//../stamps", None, cleaned("/stamps", 401)),
    ("/debug/./../stamps", None, cleaned("/stamps", 401)),
    ("/%64ebug/../stamps", None, cleaned("/stamps", 401)),
    ("/debug/..", None, cleaned("/", 401)),
    ("/health/../stamps", None, cleaned("/stamps", 401)),
    ("/debug/../../../../stamps", None, cleaned("/stamps", 401)),
    # a consumer token cannot reach a maintainer route through its own prefix
    ("/bytes/../stamps", "consumer", cleaned("/stamps", 403)),
    ("/bytes/%2e%2e/stamps", "consumer", cleaned("/stamps", 403)),
    ("/v1/bytes/../../stamps", "consumer", cleaned("/stamps", 403)),
    ("/bytes//../stamps", "consumer", cleaned("/stamps", 403)),
    # ... and a maintainer token shows the cleaned path is what goes upstream
    ("/debug/../stamps", "maintainer", forwarded("/stamps")),
    ("/v1/debug/../../v1/stamps", "maintainer", forwarded("/v1/stamps")),
    ("/bytes/x/../y", "consumer", forwarded("/bytes/y")),
    # cleaned and allowed: the upstream receives the cleaned target
    ("/debug/./x", None, forwarded("/debug/x")),
    ("/debug//x", None, forwarded("/debug/x")),
    ("//debug///x", None, forwarded("/debug/x")),
    ("/%64ebug/x", None, forwarded("/debug/x")),
    ("/debug/%41", None, forwarded("/debug/A")),
    ("/debug/%7e", None, forwarded("/debug/~")),
    ("/debug/%7E%2d%5f%2E", None, forwarded("/debug/~-_.")),
    ("/debug/%c3%a9", None, forwarded("/debug/%C3%A9")),
    ("/debug/a%3ab", None, forwarded("/debug/a%3Ab")),
    ("/debug/a%20b", None, forwarded("/debug/a%20b")),
    ("/debug/%2e", None, forwarded("/debug/")),
    ("/debug/a/..", None, forwarded("/debug/")),
    ("/debug/a/../x?q=%2e%2e/../", None, forwarded("/debug/x?q=%2e%2e/../")),
    ("/debug/x?a=//b/./c&d=%2f", None, forwarded("/debug/x?a=//b/./c&d=%2f")),
    ("http://x/debug/./x", None, forwarded("/debug/x")),
    ("/debug/%252e%252e/stamps", None, forwarded("/debug/%252e%252e/stamps")),  # decoded once, never twice
    ("/debug/%c0%ae%c0%ae/stamps", None, forwarded("/debug/%C0%AE%C0%AE/stamps")),  # overlong UTF-8 is not '.'
    ("/debug/...", None, forwarded("/debug/...")),
    ("/debug/x;y", None, forwarded("/debug/x;y")),
    ("/v1/../stamps", None, cleaned("/stamps", 401)),
    ("/debug/%2e%2e%3b/stamps", None, refused(";")),  # ..%3B is ..; to a server that decodes first
    ("/debug/x", None, forwarded("/debug/x")),
    # refused outright: no judgement, nothing forwarded
    ("/debug/a%2fb", None, refused("'/'")),
    ("/debug/a%2Fb", None, refused("'/'")),
    ("/debug/..%2f..%2fstamps", None, refused("'/'")),
    ("/debug/a%5cb", None, refused("'\\'")),
    ("/debug/a%5Cb", None, refused("'\\'")),
    ("/debug/..\\stamps", None, refused("backslash")),
    ("/debug/a\\b", None, refused("backslash")),
    ("/debug/a#b", None, refused("#")),
    ("/debug/x?a#b", None, refused("#")),
    ("/debug/x#", None, refused("#")),
    ("/debug/%00", None, refused("NUL")),
    ("/debug/a%00b", None, refused("NUL")),
    ("/debug/a\tb", None, refused("control")),
    ("/debug/a\x01b", None, REFUSED),
    ("/debug/a\x7fb", None, REFUSED),
    ("/debug/x?a=\x01", None, REFUSED),
    ("/debug/%zz", None, refused("escape")),
    ("/debug/%2", None, refused("escape")),
    ("/debug/%", None, refused("escape")),
    ("/debug/%g0", None, refused("escape")),
    ("/debug/x%2", None, refused("escape")),
    ("/..;/x", None, refused(";")),
    ("/debug/..;/stamps", None, refused(";")),
    ("/debug/%2e%2e;/stamps", None, refused(";")),
    ("/debug/.;/x", None, refused(";")),
    ("*", None, refused("*")),
    ("debug/x", None, REFUSED),
    ("x.test:80", None, REFUSED),
]


def describe(exp):
    if exp[0] == "refused 400":
        return "refused 400" + ("" if not exp[1] else " naming %s" % " ".join(exp[1]))
    if exp[0] == "cleaned then refused":
        return "cleaned to %s then judged %d" % (exp[1], exp[2])
    return "cleaned to %s then forwarded as such" % exp[1]


def run_table(kg, up, cases):
    """Runs every case; returns the list of what differed (empty: all as expected)."""
    toks = {}
    bad = []
    for target, role, exp in cases:
        tok = None
        if role:
            if role not in toks:
                toks[role] = token(kg.port, role)
            tok = toks[role]
        before = len(up.requests())
        try:
            r = raw(kg.port, target, tok)
        except Exception as e:  # noqa: BLE001 - one line per failing case
            bad.append("%r (%s): %s" % (target, describe(exp), e))
            continue
        seen = [t for _, _, t in up.requests()[before:]]
        what = "%r (%s)" % (target, describe(exp))
        got = "got %d %r" % (r.status, r.body[:100])
        if seen:
            got += ", the upstream received %r" % seen
        if exp[0] in ("refused 400", "cleaned then refused"):
            want = 400 if exp[0] == "refused 400" else exp[2]
            if r.status != want or seen:
                bad.append("%s: %s" % (what, got))
            elif exp[0] == "refused 400":
                try:
                    expect_error(r, 400, *exp[1])
                except Failure as e:
                    bad.append("%s: %s" % (what, e))
        elif r.status != 200 or seen != [exp[1]]:
            bad.append("%s: %s" % (what, got if seen else got + ", the upstream received nothing"))
    return bad


def report(bad, n):
    check(not bad, "%d of %d path cases differ: %s" % (len(bad), n, " | ".join(bad)))


def test_dot_segments_escapes_and_slashes_are_judged_as_forwarded_in_bee_mode():
    check(len(BEE_CASES) >= 30, "the table has %d cases" % len(BEE_CASES))
    with Upstream() as up, bee(up) as kg:
        report(run_table(kg, up, BEE_CASES), len(BEE_CASES))


def test_dot_segments_cannot_reach_a_restricted_route():
    # the core of the table, alone, so a failure of this one says exactly that
    cases = [c for c in BEE_CASES if c[2][0] == "cleaned then refused"]
    with Upstream() as up, bee(up) as kg:
        report(run_table(kg, up, cases), len(cases))
        check(not up.requests(), "the upstream received %r" % up.requests())


KEEP_CASES = [
    ("/debug/a%2fb", None, forwarded("/debug/a%2Fb")),
    ("/debug/a%2Fb", None, forwarded("/debug/a%2Fb")),
    ("/debug/a%5cb", None, forwarded("/debug/a%5Cb")),
    ("/debug/a%2fb/../c", None, forwarded("/debug/c")),
    ("/stamps%2fx", None, cleaned("/stamps%2Fx", 401)),
    ("/debug/a\\b", None, refused("backslash")),
    ("/debug/%2e%2e/stamps", None, cleaned("/stamps", 401)),
    ("/debug/%00", None, REFUSED),
]


def test_escaped_slashes_kept_upper_cased_with_proxy_escaped_slashes_keep():
    with Upstream() as up, bee(up, "--proxy-escaped-slashes", "keep") as kg:
        report(run_table(kg, up, KEEP_CASES), len(KEEP_CASES))


def test_absolute_form_authority_replaces_host():
    with Upstream() as up, bee(up) as kg:
        r = raw(kg.port, "/debug/plain", host=b"front.example")
        check(r.status == 200, "origin form: %d %r" % (r.status, r.body[:200]))
        h = {k.lower(): v for k, v in r.json()["headers"]}
        check(h.get("host") == "front.example", "keygate preserves Host: upstream saw %r" % h.get("host"))
        for target, host in (("http://abs.example/debug/y", "abs.example"),
                             ("http://abs.example:8080/debug/y", "abs.example:8080")):
            r = raw(kg.port, target, host=b"front.example")
            check(r.status == 200, "%s: %d %r" % (target, r.status, r.body[:200]))
            j = r.json()
            check(j["path"] == "/debug/y", "%s: upstream path %r, want /debug/y" % (target, j["path"]))
            h = {k.lower(): v for k, v in j["headers"]}
            check(h.get("host") == host, "%s with Host: front.example: upstream saw Host %r, want %r"
                  % (target, h.get("host"), host))
            hosts = [v for k, v in j["headers"] if k.lower() == "host"]
            check(len(hosts) == 1, "%s: upstream saw %d Host headers %r" % (target, len(hosts), hosts))
        for target in ("http://user@evil.example/debug/y", "http://u:p@evil.example/debug/y", "http:///debug/y"):
            r = raw(kg.port, target, host=b"front.example")
            check(r.status == 400, "%s: %d %r, want 400 (invalid authority)" % (target, r.status, r.body[:200]))
            expect_error(r, 400)
        seen = [t for _, _, t in up.requests()]
        check(seen == ["/debug/plain", "/debug/y", "/debug/y"], "the upstream received %r" % seen)


def test_avalanche_scoped_token_cannot_open_another_endpoint_by_fragment_or_dots():
    import json
    import os
    import shutil
    import tempfile
    pw = "Str0ng-Passw0rd-for-keygate-2026!"
    tmp = tempfile.mkdtemp(prefix="keygate-avax-")
    try:
        pwfile = os.path.join(tmp, "pw")
        with open(pwfile, "w") as f:
            f.write(pw + "\n")
        with Upstream() as up, Keygate("--api-auth-required", "--api-auth-password-file", pwfile,
                                       "--upstream", up.url) as kg:
            body = json.dumps({"jsonrpc": "2.0", "method": "auth.newToken",
                               "params": {"password": pw, "endpoints": ["/ext/info"]}, "id": 1}).encode()
            r = request(kg.port, "POST", "/ext/auth", headers=[("Content-Type", "application/json")], body=body)
            check(r.status == 200 and "result" in r.json(), "newToken: %d %r" % (r.status, r.body[:200]))
            tok = r.json()["result"]["token"]
            post = dict(method=b"POST", body=b"{}")
            # control: the scoped token opens its endpoint
            with Client(kg.port) as c:
                r = c.request("POST", "/ext/info", [("Authorization", "Bearer " + tok)], body=b"{}")
            check(r.status == 200, "POST /ext/info with its token: %d %r" % (r.status, r.body[:200]))
            before = len(up.requests())
            r = raw(kg.port, "/ext/admin#/ext/info", tok, **post)
            check(r.status == 400, "POST /ext/admin#/ext/info with a /ext/info token: %d %r, want 400"
                  % (r.status, r.body[:200]))
            for target in ("/ext/info/../admin", "/ext/info/%2e%2e/admin", "/ext/info/..;/admin",
                           "/ext/info%2f..%2fadmin", "/ext/info/../../ext/admin"):
                r = raw(kg.port, target, tok, **post)
                check(r.status in (400, 401, 403), "POST %s with a /ext/info token: %d %r, want a refusal"
                      % (target, r.status, r.body[:200]))
            seen = up.requests()[before:]
            check(not seen, "refused requests reached the upstream: %r" % seen)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_http_versions_other_than_1_0_and_1_1_get_505():
    with Upstream() as up, bee(up) as kg:
        for version in (b"HTTP/1.2", b"HTTP/2.0"):
            r = raw(kg.port, "/health", version=version)
            check(r.status == 505, "GET /health %s: %d %r, want 505" % (version.decode(), r.status, r.body[:200]))
            expect_error(r, 505, "version")
        for version in (b"HTTP/1.0", b"HTTP/1.1"):
            r = raw(kg.port, "/health", version=version)
            check(r.status == 200, "GET /health %s: %d %r" % (version.decode(), r.status, r.body[:200]))
        seen = [t for _, _, t in up.requests()]
        check(seen == ["/health", "/health"], "the upstream received %r, want only the two good requests" % seen)


def test_missing_empty_or_invalid_host_is_400():
    with Upstream() as up, bee(up) as kg:
        cases = [("no Host", None, b""), ("empty Host", b"", b""), ("Host: a b", b"a b", b""),
                 ("Host: a/b", b"a/b", b""), ("Host: user@a", b"user@a", b""),
                 ("Host with 0x01", b"a\x01b", b""), ("Host with TAB inside", b"a\tb", b"")]
        for what, host, extra in cases:
            r = raw(kg.port, "/health", host=host, extra=extra)
            check(r.status == 400, "HTTP/1.1 with %s: %d %r, want 400" % (what, r.status, r.body[:200]))
            # a control byte is the parser's refusal ("Invalid header value char"); the rest name Host
            expect_error(r, 400, *(() if "0x01" in what or "TAB" in what else ("Host",)))
        check(not up.requests(), "requests with a bad Host reached the upstream: %r" % up.requests())
        for host in (b"a.example", b"a.example:8080", b"[::1]:8080", b"127.0.0.1"):
            r = raw(kg.port, "/health", host=host)
            check(r.status == 200, "Host: %s: %d %r" % (host.decode(), r.status, r.body[:200]))
        r = raw(kg.port, "/health", version=b"HTTP/1.0", host=None)
        check(r.status == 200, "HTTP/1.0 without Host: %d %r" % (r.status, r.body[:200]))
