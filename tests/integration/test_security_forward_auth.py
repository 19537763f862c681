"""Forward-auth (/_keygate/check) judges the normalised URI of the original
request, and refuses when normalising changes its segments: the fronting
proxy forwards the URI as sent, so a check that cleaned "/pub/../secret"
into something else would approve a request the API sees differently.
forward_auth.source decides which header set describes the original
request; under auto a check carrying both sets is refused (issue 11)."""
from harness import Client, Keygate, check, expect_error, request, run_cli, bcrypt_hash, BEE_KEY
from test_bee import token

KEY = BEE_KEY


def NGINX(m, uri):
    return [("X-Original-Method", m), ("X-Original-URI", uri)]


def TRAEFIK(m, uri):
    return [("X-Forwarded-Method", m), ("X-Forwarded-Uri", uri)]


def public_kg(*extra):
    return Keygate("--require-auth", "--public-paths", "/pub/*", *extra)


# (X-Original-URI / X-Forwarded-Uri, expected status of the check)
URI_CASES = [
    ("/pub/x", 200),
    ("/pub/%78", 200),            # escape decoding alone does not change the segments
    ("/pub/x?a=../b", 200),       # the query is not judged
    ("/pub/x?a=%2f//b", 200),
    ("/pub/../secret", 401),
    ("/pub/%2e%2e/secret", 401),
    ("/pub/%2E%2E/secret", 401),
    ("/pub/.%2e/secret", 401),
    ("/pub//x", 401),             # merged slashes change the segments: refused, never 200
    ("/pub/./x", 401),
    ("/pub/a/../x", 401),
    ("//pub/x", 401),
    ("/secret", 401),
]


def test_check_judges_the_normalised_uri_and_refuses_when_segments_change():
    bad = []
    with public_kg() as kg, Client(kg.port) as c:
        for style, hdrs in (("nginx", NGINX), ("traefik", TRAEFIK)):
            for uri, want in URI_CASES:
                r = c.request("GET", "/_keygate/check", hdrs("GET", uri))
                if r.status != want:
                    bad.append("%s %r: %d %r, want %d" % (style, uri, r.status, r.body[:120], want))
    check(not bad, "%d check(s) differ: %s" % (len(bad), " | ".join(bad)))


def test_check_refuses_an_original_uri_it_cannot_normalise_with_400():
    bad = []
    with public_kg() as kg:
        for style, hdrs in (("nginx", NGINX), ("traefik", TRAEFIK)):
            for uri in ("/pub/a%2fb", "/pub/a%2Fb", "/pub/a%5cb", "/pub/a\\b", "/pub/%00", "/pub/%zz", "/pub/%2",
                        "/pub/..;/secret", "pub/x", "*"):
                r = request(kg.port, "GET", "/_keygate/check", hdrs("GET", uri))
                if r.status != 400:
                    bad.append("%s %r: %d %r, want 400" % (style, uri, r.status, r.body[:120]))
                else:
                    expect_error(r, 400)
    check(not bad, "%d check(s) differ: %s" % (len(bad), " | ".join(bad)))


def test_check_with_an_insufficient_bee_token_is_403_after_dot_segments():
    with Keygate("--restricted", "--admin-password", bcrypt_hash("test"), "--token-encryption-key", KEY) as kg:
        tok = [("Authorization", "Bearer " + token(kg.port, "consumer"))]
        for style, hdrs in (("nginx", NGINX), ("traefik", TRAEFIK)):
            r = request(kg.port, "GET", "/_keygate/check", hdrs("GET", "/bytes/abc") + tok)
            check(r.status == 200, "%s consumer /bytes/abc: %d %r" % (style, r.status, r.body[:200]))
            for uri in ("/bytes/../stamps", "/bytes/%2e%2e/stamps", "/bytes//../stamps", "/v1/bytes/../../stamps"):
                r = request(kg.port, "GET", "/_keygate/check", hdrs("GET", uri) + tok)
                check(r.status == 403, "%s consumer token and %s: %d %r, want 403"
                      % (style, uri, r.status, r.body[:200]))
            r = request(kg.port, "GET", "/_keygate/check", hdrs("GET", "/debug/../stamps"))
            check(r.status == 401, "%s no token and /debug/../stamps: %d %r, want 401" % (style, r.status, r.body[:200]))


def test_check_refuses_changed_segments_even_when_the_token_may_open_the_clean_path():
    # nginx forwards the URI as sent: the API may resolve "/bytes/../stamps"
    # differently, so a yes for "/stamps" is not a yes for what it receives
    with Keygate("--restricted", "--admin-password", bcrypt_hash("test"), "--token-encryption-key", KEY) as kg:
        tok = [("Authorization", "Bearer " + token(kg.port, "maintainer"))]
        r = request(kg.port, "GET", "/_keygate/check", NGINX("GET", "/stamps") + tok)
        check(r.status == 200, "maintainer /stamps: %d %r" % (r.status, r.body[:200]))
        for uri in ("/bytes/../stamps", "/stamps/.", "//stamps", "/stamps/x/.."):
            r = request(kg.port, "GET", "/_keygate/check", NGINX("GET", uri) + tok)
            check(r.status in (401, 403), "maintainer token and %s: %d %r, want a refusal (401 or 403), never 200"
                  % (uri, r.status, r.body[:200]))
            check(r.header("X-Keygate-Role") is None and r.header("X-Keygate-Principal") is None,
                  "a refused check of %s still hands out an identity: %r" % (uri, r.headers))


def test_auto_source_refuses_a_check_carrying_both_header_sets():
    with public_kg() as kg:
        both = [
            ("both full sets", NGINX("GET", "/pub/x") + TRAEFIK("GET", "/pub/x")),
            ("X-Original-URI + X-Forwarded-Method", [("X-Original-URI", "/pub/x"), ("X-Forwarded-Method", "GET")]),
            ("X-Forwarded-Uri + X-Original-Method", [("X-Forwarded-Uri", "/pub/x"), ("X-Original-Method", "GET")]),
            ("nginx set + X-Forwarded-Uri", NGINX("GET", "/pub/x") + [("X-Forwarded-Uri", "/secret")]),
            ("traefik set + X-Original-URI", TRAEFIK("GET", "/secret") + [("X-Original-URI", "/pub/x")]),
        ]
        for what, hdrs in both:
            r = request(kg.port, "GET", "/_keygate/check", hdrs)
            check(r.status == 400, "auto with %s: %d %r, want 400" % (what, r.status, r.body[:200]))
            expect_error(r, 400)
        # X-Forwarded-For / -Proto / -Host are not part of either set: nginx sends them too
        r = request(kg.port, "GET", "/_keygate/check", NGINX("GET", "/pub/x") + [
            ("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "a.test")])
        check(r.status == 200, "auto, nginx set plus X-Forwarded-For/-Proto/-Host: %d %r, want 200"
              % (r.status, r.body[:200]))


def test_empty_or_missing_method_missing_uri_or_repeated_header_is_400():
    with public_kg() as kg:
        cases = [
            ("X-Original-Method empty", [("X-Original-Method", ""), ("X-Original-URI", "/pub/x")]),
            ("X-Forwarded-Method empty", [("X-Forwarded-Method", ""), ("X-Forwarded-Uri", "/pub/x")]),
            ("X-Original-URI empty", [("X-Original-Method", "GET"), ("X-Original-URI", "")]),
            ("no X-Original-URI", [("X-Original-Method", "GET")]),
            ("no X-Forwarded-Uri", [("X-Forwarded-Method", "GET")]),
            ("neither set", []),
            # nginx's auth_request subrequest is a GET: the check's own method must never stand in
            ("no X-Original-Method", [("X-Original-URI", "/pub/x")]),
            ("no X-Forwarded-Method", [("X-Forwarded-Uri", "/pub/x")]),
            ("X-Original-URI twice", NGINX("GET", "/pub/x") + [("X-Original-URI", "/secret")]),
            ("X-Forwarded-Method twice", TRAEFIK("GET", "/pub/x") + [("X-Forwarded-Method", "POST")]),
        ]
        for what, hdrs in cases:
            r = request(kg.port, "GET", "/_keygate/check", hdrs)
            check(r.status == 400, "%s: %d %r, want 400" % (what, r.status, r.body[:200]))
            expect_error(r, 400)


def test_traefik_source_ignores_client_added_x_original_headers():
    with public_kg("--forward-auth-source", "traefik") as kg:
        r = request(kg.port, "GET", "/_keygate/check",
                    [("X-Original-URI", "/pub/x"), ("X-Original-Method", "GET")] + TRAEFIK("GET", "/secret"))
        check(r.status == 401, "traefik source, X-Original-URI /pub/x beside X-Forwarded-Uri /secret: %d %r, "
              "want 401 (judged on /secret)" % (r.status, r.body[:200]))
        r = request(kg.port, "GET", "/_keygate/check",
                    [("X-Original-URI", "/secret"), ("X-Original-Method", "GET")] + TRAEFIK("GET", "/pub/x"))
        check(r.status == 200, "traefik source, X-Forwarded-Uri /pub/x beside X-Original-URI /secret: %d %r, "
              "want 200 (judged on /pub/x)" % (r.status, r.body[:200]))
        r = request(kg.port, "GET", "/_keygate/check", NGINX("GET", "/pub/x"))
        check(r.status == 400, "traefik source with only X-Original-*: %d %r, want 400" % (r.status, r.body[:200]))


def test_nginx_source_ignores_client_added_x_forwarded_headers():
    with public_kg("--forward-auth-source", "nginx") as kg:
        r = request(kg.port, "GET", "/_keygate/check", TRAEFIK("GET", "/pub/x") + NGINX("GET", "/secret"))
        check(r.status == 401, "nginx source, X-Forwarded-Uri /pub/x beside X-Original-URI /secret: %d %r, "
              "want 401 (judged on /secret)" % (r.status, r.body[:200]))
        r = request(kg.port, "GET", "/_keygate/check", TRAEFIK("GET", "/secret") + NGINX("GET", "/pub/x"))
        check(r.status == 200, "nginx source, X-Original-URI /pub/x beside X-Forwarded-Uri /secret: %d %r, "
              "want 200 (judged on /pub/x)" % (r.status, r.body[:200]))
        r = request(kg.port, "GET", "/_keygate/check", TRAEFIK("GET", "/pub/x"))
        check(r.status == 400, "nginx source with only X-Forwarded-*: %d %r, want 400" % (r.status, r.body[:200]))


def test_escaped_slashes_in_the_original_uri_are_kept_with_proxy_escaped_slashes_keep():
    with public_kg("--proxy-escaped-slashes", "keep") as kg:
        for uri, want in (("/pub/a%2fb", 200), ("/pub/a%5Cb", 200),
                          ("/pub/a%2fb/../../secret", 401), ("/pub/a\\b", 400)):
            r = request(kg.port, "GET", "/_keygate/check", NGINX("GET", uri))
            check(r.status == want, "keep: %r: %d %r, want %d" % (uri, r.status, r.body[:200], want))
