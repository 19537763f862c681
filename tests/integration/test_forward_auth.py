"""Forward-auth mode (/_keygate/check with nginx and Traefik headers),
require_auth with and without an upstream, public paths, --api-prefix."""
from harness import Client, Keygate, Upstream, check, expect_error, request

NGINX = lambda m, uri: [("X-Original-Method", m), ("X-Original-URI", uri)]  # noqa: E731
TRAEFIK = lambda m, uri: [("X-Forwarded-Method", m), ("X-Forwarded-Uri", uri),  # noqa: E731
                          ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "api.example.test")]


def test_check_allows_nginx_and_traefik_when_auth_not_required():
    with Keygate("--require-auth=false") as kg, Client(kg.port) as c:
        for style, hdrs in (("nginx", NGINX), ("traefik", TRAEFIK)):
            for m in ("GET", "POST", "DELETE"):
                r = c.request("GET", "/_keygate/check", hdrs(m, "/bytes/abc?x=1"))
                check(r.status == 200, "%s %s check without require_auth: %d %r"
                      % (style, m, r.status, r.body[:200]))
        r = c.request("POST", "/_keygate/check", NGINX("PUT", "/a"), body=b"")
        check(r.status == 200, "POST /_keygate/check: %d" % r.status)


def test_check_is_401_for_non_public_uri_when_auth_required():
    with Keygate("--require-auth", "--api-keys=false", "--public-paths", "/pub/*") as kg, Client(kg.port) as c:
        for style, hdrs in (("nginx", NGINX), ("traefik", TRAEFIK)):
            for uri in ("/", "/private", "/bytes/abc?x=1", "/pubx", "/pu"):
                r = c.request("GET", "/_keygate/check", hdrs("GET", uri))
                check(r.status == 401, "%s check of %s with require_auth and no scheme: %d, want 401"
                      % (style, uri, r.status))
                expect_error(r, 401)


def test_check_allows_public_path_when_auth_required():
    with Keygate("--require-auth", "--public-paths", "/pub/*") as kg, Client(kg.port) as c:
        for style, hdrs in (("nginx", NGINX), ("traefik", TRAEFIK)):
            for m in ("GET", "POST"):
                r = c.request("GET", "/_keygate/check", hdrs(m, "/pub/x?y=1"))
                check(r.status == 200, "%s %s check of public /pub/x?y=1: %d, want 200"
                      % (style, m, r.status))


def test_other_paths_without_upstream_are_404_json():
    with Keygate("--require-auth=false") as kg:
        for m, t in (("GET", "/"), ("GET", "/bytes/abc"), ("POST", "/api?x=1")):
            r = request(kg.port, m, t, body=b"{}" if m == "POST" else None)
            expect_error(r, 404)


def test_check_never_proxies_even_with_upstream():
    with Upstream() as up, Keygate("--require-auth=false", "--upstream", up.url) as kg:
        r = request(kg.port, "GET", "/_keygate/check", NGINX("GET", "/some/where"))
        check(r.status == 200, "check with an upstream: %d" % r.status)
        r = request(kg.port, "POST", "/_keygate/check", TRAEFIK("POST", "/else"), body=b"x")
        check(r.status == 200, "POST check with an upstream: %d" % r.status)
        reqs = up.requests()
        check(not reqs, "/_keygate/check reached the upstream: %r" % reqs)


def test_require_auth_with_upstream_is_401_except_public_paths():
    with Upstream() as up, Keygate("--require-auth", "--api-keys=false", "--public-paths", "/pub/*",
                                   "--upstream", up.url) as kg:
        r = request(kg.port, "GET", "/private/x")
        expect_error(r, 401)
        r = request(kg.port, "POST", "/private/y", body=b"abc")
        expect_error(r, 401)
        check(not any("/private" in t for _, _, t in up.requests()),
              "a refused request reached the upstream: %r" % up.requests())
        r = request(kg.port, "GET", "/pub/x?y=1")
        check(r.status == 200, "public path /pub/x?y=1: %d, want 200 from upstream" % r.status)
        check(r.json().get("path") == "/pub/x?y=1", "public path not proxied as is: %r" % r.body[:200])
        check(request(kg.port, "GET", "/_keygate/health").status == 200,
              "health needs no credential")


def test_require_auth_false_proxies_anonymously():
    with Upstream() as up, Keygate("--require-auth=false", "--upstream", up.url) as kg:
        r = request(kg.port, "GET", "/anon?z=9")
        check(r.status == 200 and r.json().get("path") == "/anon?z=9",
              "anonymous request with --require-auth=false: %d %r" % (r.status, r.body[:200]))


def test_paths_next_to_keygates_own_routes_go_to_the_right_place():
    """Each path that ends, extends or stops short of a route's path (and
    of the api prefix) is answered by keygate or proxied exactly as the
    route table says: a route matches its whole path, a prefix route its
    path and what is below it, and the dialects' routes only when on."""
    own = ["/_keygate", "/_keygate/", "/_keygate/health", "/_keygate/healthz", "/_keygate/health/x",
           "/_keygate/check/", "/_keygate//health", "/_security", "/_security/user"]
    proxied = ["/_keygatex", "/_keygat", "/_keygatehealth", "/auth", "/auth/x", "/authx", "/refresh",
               "/ext/auth", "/_securityx", "/_securit", "/", "/x/_keygate/health", "/a"]
    with Upstream() as up, Keygate("--require-auth=false", "--upstream", up.url) as kg, Client(kg.port) as c:
        for path in own + proxied:
            r = c.request("GET", path, NGINX("GET", "/x") if "check" in path else None)
            is_proxied = r.header("Content-Type") == "application/json" and b'"conn"' in r.body
            check(is_proxied == (path in proxied), "%s: %s (%d %r)" % (
                path, "proxied, expected keygate's own answer" if is_proxied else
                "answered by keygate, expected it proxied", r.status, r.body[:120]))
        seen = [q[2] for q in up.requests()]
        check(seen == proxied, "the upstream saw %r, expected %r" % (seen, proxied))


def test_api_prefix_moves_keygate_endpoints():
    with Upstream() as up, Keygate("--require-auth=false", "--upstream", up.url, "--api-prefix", "/_kg",
                                   api_prefix="/_kg") as kg:
        r = request(kg.port, "GET", "/_kg/health")
        check(r.status == 200 and r.json().get("status") == "ok", "/_kg/health: %d" % r.status)
        r = request(kg.port, "GET", "/_kg/check", NGINX("GET", "/x"))
        check(r.status == 200, "/_kg/check: %d" % r.status)
        r = request(kg.port, "GET", "/_keygate/health")
        check(r.status == 200 and r.json().get("path") == "/_keygate/health",
              "/_keygate/health with --api-prefix /_kg was not proxied: %d %r" % (r.status, r.body[:200]))
    with Keygate("--require-auth=false", "--api-prefix", "/_kg", api_prefix="/_kg") as kg:
        r = request(kg.port, "GET", "/_keygate/health")
        expect_error(r, 404)
