"""The official Elasticsearch clients, unchanged, against keygate's
/_security API keys, and keygate's GET / (api_key.info):
  - npm @elastic/elasticsearch 8.19 and 9.4 (tests/compat/elasticsearch8,
    elasticsearch9: pinned by their lockfiles; the node script is
    tests/compat/elasticsearch_client.js);
  - Debian's python3-elasticsearch 7.17, which asks GET / before anything
    else and goes on only for Elasticsearch's info answer (or a 401/403).
The upstream is the recording one (upstream.py): not Elasticsearch."""
import base64
import json
import os
import shutil
import subprocess
import sys

from harness import Client, Keygate, ROOT, Upstream, bcrypt_hash, check, note, request, skip
from test_tls import Certs, tls_keygate
from test_tls_upstream import TLSUpstream

COMPAT = os.path.join(ROOT, "tests", "compat")
PW = "Str0ng-Elastic-Passw0rd-2026!"


def basic_header():
    return ("Authorization", "Basic " + base64.b64encode(("elastic:" + PW).encode()).decode())


def keygate(up, *more):
    return Keygate("--upstream", up.url, "--admin-password", bcrypt_hash(PW), *more)


def upstream_paths(up):
    return [(m, t) for _, m, t in up.requests()]


# ---------------------------------------------------------------- npm clients

def npm_install(here):
    if os.path.isdir(os.path.join(here, "node_modules", "@elastic", "elasticsearch")):
        return
    npm = shutil.which("npm")
    if not npm:
        skip("npm is not installed (tools/deps.sh --tests installs it)")
    p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=here, capture_output=True,
                       text=True, timeout=600)
    check(p.returncode == 0, "npm ci in %s failed: %s" % (here, p.stderr[-2000:]))


def run_js_client(major, certs=None):
    """certs: HTTPS on both sides, client -> keygate's TLS listener (Node
    trusts certs' CA by NODE_EXTRA_CA_CERTS) and keygate -> an https
    upstream (verified with proxy.tls_ca), as in front of Elasticsearch 8."""
    here = os.path.join(COMPAT, "elasticsearch%d" % major)
    node = shutil.which("node")
    if not node:
        skip("node is not installed (tools/deps.sh --tests installs it)")
    npm_install(here)
    with (TLSUpstream(certs) if certs else Upstream()) as up, \
            (tls_keygate(certs, "--upstream", up.url, "--proxy-tls-ca", certs.ca, "--admin-password", bcrypt_hash(PW))
             if certs else keygate(up)) as kg:
        env = dict(os.environ, KG_URL="http://127.0.0.1:%d" % kg.port, KG_PASSWORD=PW)
        if certs:
            env.update(KG_URL="https://localhost:%d" % kg.tls_port, NODE_EXTRA_CA_CERTS=certs.ca)
        p = subprocess.run([node, os.path.join(COMPAT, "elasticsearch_client.js")], cwd=here, env=env,
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0 and p.stdout.strip(),
              "client script: exit %d, stdout %r, stderr %r" % (p.returncode, p.stdout[-500:], p.stderr[-1000:]))
        out = json.loads(p.stdout.strip().splitlines()[-1])
        check("fatal" not in out, "client script failed: %s" % out.get("fatal"))
        check(out["client"].startswith("%d." % major), "installed client is %s, not %d.x" % (out["client"], major))
        note("@elastic/elasticsearch %s" % out["client"])
        judge_js(out, major)
        paths = upstream_paths(up)
        check(paths == [("GET", "/data/x?es=1")],
              "the upstream should have seen only the allowed GET /data/x, saw %r" % paths)


def ok(out, what, major):
    r = out[what]
    check(r.get("status") == 200 and "error" not in r, "%s: expected 200, got %s" % (what, json.dumps(r)[:600]))
    check(r.get("product") == "Elasticsearch", "%s: X-elastic-product is %r" % (what, r.get("product")))
    if what not in ("data",):
        want = "application/vnd.elasticsearch+json;compatible-with=%d" % major
        check(r.get("type") == want, "%s: Content-Type %r, want %r" % (what, r.get("type"), want))
    return r["body"]


def judge_js(out, major):
    created = ok(out, "create", major)
    kid = created.get("id")
    check(kid and created.get("name") == "compat-key" and created.get("api_key") and created.get("encoded"),
          "createApiKey answer: %r" % created)
    check(base64.b64decode(created["encoded"]).decode() == "%s:%s" % (kid, created["api_key"]),
          "encoded is not base64(id:api_key): %r" % created)
    day = 24 * 3600 * 1000
    got = ok(out, "get", major)["api_keys"]
    check(len(got) == 1 and got[0]["id"] == kid and got[0]["username"] == "elastic" and got[0]["realm"] == "reserved"
          and got[0]["invalidated"] is False and got[0]["metadata"] == {"team": "compat"}
          and got[0]["expiration"] - got[0]["creation"] == day,
          "getApiKey answer: %r" % got)
    check(got[0]["role_descriptors"]["reader"]["applications"] ==
          [{"application": "keygate", "privileges": ["GET"], "resources": ["/data/*"]}],
          "getApiKey role_descriptors: %r" % got[0]["role_descriptors"])
    q = ok(out, "query", major)
    check(q.get("total") == 1 and q.get("count") == 1 and [k["id"] for k in q["api_keys"]] == [kid],
          "queryApiKeys answer: %r" % q)
    check(ok(out, "update", major) == {"updated": True}, "updateApiKey answer: %r" % out["update"])
    after = ok(out, "get_after_update", major)["api_keys"]
    check(after[0]["metadata"] == {"team": "compat", "v": 2}, "metadata after updateApiKey: %r" % after[0]["metadata"])
    me = ok(out, "authenticate", major)
    check(me.get("username") == "elastic" and me.get("roles") == ["superuser"]
          and me.get("authentication_realm") == {"name": "reserved", "type": "reserved"}
          and me.get("authentication_type") == "realm", "authenticate as elastic: %r" % me)
    mk = ok(out, "key_authenticate", major)
    check(mk.get("authentication_type") == "api_key" and mk.get("api_key") == {"id": kid, "name": "compat-key"}
          and mk.get("username") == "elastic", "authenticate with the key: %r" % mk)
    data = ok(out, "data", major)
    check(data.get("path") == "/data/x?es=1", "upstream echo: %r" % data)
    sent = {k.lower(): v for k, v in data["headers"]}
    check("authorization" not in sent, "the ApiKey credential reached the upstream: %r" % sent.get("authorization"))
    check(sent.get("x-keygate-principal") == kid, "X-Keygate-Principal upstream: %r" % sent.get("x-keygate-principal"))
    other = out["other"]
    check(other.get("is_response_error") and other.get("status") == 403
          and other["body"]["error"]["type"] == "security_exception"
          and "action [GET /other/x] is unauthorized for API key id [%s]" % kid in other["body"]["error"]["reason"],
          "a path the key has no privilege on: %s" % json.dumps(other)[:600])
    inv = ok(out, "invalidate", major)
    check(inv == {"invalidated_api_keys": [kid], "previously_invalidated_api_keys": [], "error_count": 0},
          "invalidateApiKey answer: %r" % inv)
    gone = out["data_after_invalidate"]
    check(gone.get("is_response_error") and gone.get("status") == 401
          and gone["body"]["error"]["type"] == "security_exception" and "ApiKey" in (gone.get("www_authenticate") or []),
          "the invalidated key upstream: %s" % json.dumps(gone)[:600])


def test_npm_elasticsearch_8_manages_api_keys_and_its_key_opens_only_its_routes_until_invalidated():
    run_js_client(8)


def test_npm_elasticsearch_9_manages_api_keys_and_its_key_opens_only_its_routes_until_invalidated():
    run_js_client(9)


def test_npm_elasticsearch_8_over_tls_to_keygate_and_from_keygate_to_an_https_upstream():
    with Certs() as certs:
        run_js_client(8, certs)


# ---------------------------------------------------------------- GET /

def test_get_root_is_proxied_by_default():
    with Upstream() as up, keygate(up) as kg:
        r = request(kg.port, "GET", "/", [basic_header()])
        check(r.status == 200 and r.json().get("path") == "/", "GET / as elastic: %d %r" % (r.status, r.body[:300]))
        check(upstream_paths(up) == [("GET", "/")], "the upstream saw %r" % upstream_paths(up))


INFO_VERSION = {
    "number": "8.19.0", "build_flavor": "default", "build_type": "keygate", "build_date": "1970-01-01T00:00:00.000Z",
    "build_snapshot": False, "lucene_version": "9.12.2", "minimum_wire_compatibility_version": "7.17.0",
    "minimum_index_compatibility_version": "7.0.0",
}


def test_get_root_with_api_key_info_keygate_answers_elasticsearch_info():
    with Upstream() as up, keygate(up, "--api-key-info", "keygate") as kg:
        r = request(kg.port, "GET", "/", [basic_header()])
        check(r.status == 200, "GET / as elastic: %d %r" % (r.status, r.body[:300]))
        check(r.header("X-elastic-product") == "Elasticsearch", "X-elastic-product: %r" % r.header("X-elastic-product"))
        check((r.header("Content-Type") or "").startswith("application/json"), "Content-Type %r" % r.header("Content-Type"))
        j = r.json()
        version = dict(j.get("version") or {})
        check(version.pop("build_hash", None), "version.build_hash missing: %r" % j)
        check(version == INFO_VERSION, "version: %r" % j.get("version"))
        check({k: v for k, v in j.items() if k != "version"} ==
              {"name": "keygate", "cluster_name": "keygate", "cluster_uuid": "_na_", "tagline": "You Know, for Search"},
              "info body: %r" % j)
        h = request(kg.port, "HEAD", "/", [basic_header()])
        check(h.status == 200 and h.body == b"" and h.header("X-elastic-product") == "Elasticsearch",
              "HEAD /: %d %r %r" % (h.status, h.header("X-elastic-product"), h.body[:100]))
        # the official clients ask for the compatibility media type
        v8 = request(kg.port, "GET", "/", [basic_header(), ("Accept", "application/vnd.elasticsearch+json; compatible-with=8")])
        check(v8.header("Content-Type") == "application/vnd.elasticsearch+json;compatible-with=8",
              "Content-Type for compatible-with=8: %r" % v8.header("Content-Type"))
        check(upstream_paths(up) == [], "GET / reached the upstream: %r" % upstream_paths(up))


def test_get_root_with_api_key_info_keygate_refuses_without_credentials_and_other_methods():
    with Upstream() as up, keygate(up, "--api-key-info", "keygate") as kg:
        r = request(kg.port, "GET", "/")
        check(r.status == 401, "GET / without credentials: %d %r" % (r.status, r.body[:300]))
        err = r.json()["error"]
        check(err["type"] == "security_exception"
              and err["reason"] == "missing authentication credentials for REST request [/]",
              "401 body: %r" % r.json())
        check("ApiKey" in r.header_all("WWW-Authenticate"), "WWW-Authenticate: %r" % r.header_all("WWW-Authenticate"))
        bad = request(kg.port, "GET", "/", [("Authorization", "Basic ZWxhc3RpYzp3cm9uZw==")])  # elastic:wrong
        check(bad.status == 401 and bad.json()["error"]["type"] == "security_exception",
              "GET / with a wrong password: %d %r" % (bad.status, bad.body[:300]))
        p = request(kg.port, "POST", "/", [basic_header(), ("Content-Type", "application/json")], b"{}")
        check(p.status == 405 and p.json() == {
            "error": "Incorrect HTTP method for uri [/] and method [POST], allowed: [GET, HEAD]", "status": 405},
            "POST /: %d %r" % (p.status, p.body[:300]))
        check(upstream_paths(up) == [], "the upstream saw %r" % upstream_paths(up))


def create_key(port, body):
    r = request(port, "POST", "/_security/api_key", [basic_header(), ("Content-Type", "application/json")],
                json.dumps(body).encode())
    check(r.status == 200, "create key: %d %r" % (r.status, r.body[:300]))
    return r.json()


def test_get_root_with_api_key_info_keygate_needs_the_monitor_privilege():
    with Upstream() as up, keygate(up, "--api-key-info", "keygate") as kg:
        app_only = create_key(kg.port, {"name": "app-only", "role_descriptors": {"r": {"applications": [
            {"application": "keygate", "privileges": ["*"], "resources": ["*"]}]}}})
        monitor = create_key(kg.port, {"name": "monitor", "role_descriptors": {"r": {"cluster": ["monitor"]}}})
        r = request(kg.port, "GET", "/", [("Authorization", "ApiKey " + app_only["encoded"])])
        check(r.status == 403, "GET / with a key without monitor: %d %r" % (r.status, r.body[:300]))
        err = r.json()["error"]
        check(err["type"] == "security_exception" and err["reason"].startswith(
            "action [cluster:monitor/main] is unauthorized for API key id [%s] of user [elastic]" % app_only["id"]),
            "403 body: %r" % r.json())
        m = request(kg.port, "GET", "/", [("Authorization", "ApiKey " + monitor["encoded"])])
        check(m.status == 200 and m.json().get("tagline") == "You Know, for Search",
              "GET / with a monitor key: %d %r" % (m.status, m.body[:300]))
        check(upstream_paths(up) == [], "the upstream saw %r" % upstream_paths(up))


# ---------------------------------------------------------------- python3-elasticsearch 7.17

def python_with_es7():
    """An interpreter that imports Debian's elasticsearch 7.17: this one, or
    Debian's own (the tests may run under another Python)."""
    for py in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        if py and os.access(py, os.X_OK):
            p = subprocess.run([py, "-c", "import elasticsearch; print(elasticsearch.__versionstr__)"],
                               capture_output=True, text=True, timeout=60)
            if p.returncode == 0:
                check(p.stdout.startswith("7.17."), "%s has elasticsearch %r, not 7.17" % (py, p.stdout.strip()))
                return py
    skip("python3-elasticsearch is not installed (tools/deps.sh --tests installs it)")


def run_py7(kg, scenario, certs=None):
    """certs: over keygate's TLS listener, verified with certs' CA (ca_certs)."""
    py = python_with_es7()
    env = dict(os.environ, KG_URL="http://127.0.0.1:%d" % kg.port, KG_PASSWORD=PW)
    if certs:
        env.update(KG_URL="https://localhost:%d" % kg.tls_port, KG_CA=certs.ca)
    p = subprocess.run([py, os.path.join(COMPAT, "elasticsearch_py7.py"), scenario], env=env, capture_output=True,
                       text=True, timeout=120)
    check(p.returncode == 0 and p.stdout.strip(),
          "elasticsearch_py7.py %s: exit %d, %r %r" % (scenario, p.returncode, p.stdout[-500:], p.stderr[-1500:]))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    note("elasticsearch-py %s" % out["client"])
    return out


def body_of(out, what):
    r = out.get(what) or {}
    check(r.get("ok"), "%s: %s" % (what, json.dumps(r)[:600]))
    return r["body"]


def test_python_elasticsearch_7_17_works_through_api_key_info_keygate_in_front_of_a_non_es_upstream():
    with Upstream() as up, keygate(up, "--api-key-info", "keygate") as kg:
        out = run_py7(kg, "keys")
        kid = body_of(out, "create")["id"]
        got = body_of(out, "get")["api_keys"]
        check(len(got) == 1 and got[0]["id"] == kid and got[0]["name"] == "py-key" and got[0]["invalidated"] is False,
              "get_api_key: %r" % got)
        me = body_of(out, "authenticate")
        check(me["username"] == "elastic" and me["authentication_type"] == "realm", "authenticate: %r" % me)
        mk = body_of(out, "key_authenticate")
        check(mk.get("api_key") == {"id": kid, "name": "py-key"}, "authenticate with the key: %r" % mk)
        check(body_of(out, "data").get("path") == "/data/x", "GET /data/x with the key: %r" % out["data"])
        other = out["other"]
        check(other.get("error") == "AuthorizationException" and other.get("status") == 403
              and other.get("type") == "security_exception", "GET /other with the key: %r" % other)
        check(body_of(out, "invalidate")["invalidated_api_keys"] == [kid], "invalidate_api_key: %r" % out["invalidate"])
        gone = out["data_after_invalidate"]
        check(gone.get("error") == "AuthenticationException" and gone.get("status") == 401
              and gone.get("type") == "security_exception", "GET /data/after with the invalidated key: %r" % gone)
        check(not [w for w in out["warnings"] if "unable to verify" in w],
              "the client could not verify keygate as Elasticsearch: %r" % out["warnings"])
        check(upstream_paths(up) == [("GET", "/data/x")], "the upstream saw %r" % upstream_paths(up))


def test_python_elasticsearch_7_17_refuses_a_non_es_upstream_behind_api_key_info_proxy():
    with Upstream() as up, keygate(up) as kg:
        out = run_py7(kg, "keys")
        check(out["create"].get("error") == "UnsupportedProductError",
              "create_api_key after a GET / answered by a non-Elasticsearch upstream: %r" % out["create"])
        check(upstream_paths(up) == [("GET", "/")], "the upstream saw %r" % upstream_paths(up))


def test_python_elasticsearch_7_17_goes_on_after_a_401_on_get_root():
    """Without credentials GET / (api_key.info keygate) is refused; the
    client warns and goes on, as against an Elasticsearch that refuses its
    info API, and gets _authenticate's own 401."""
    with Upstream() as up, keygate(up, "--api-key-info", "keygate") as kg:
        out = run_py7(kg, "anonymous")
        r = out["authenticate"]
        check(r.get("error") == "AuthenticationException" and r.get("status") == 401
              and r.get("type") == "security_exception", "_authenticate without credentials: %r" % r)
        check(any("unable to verify" in w for w in out["warnings"]), "no 'unable to verify' warning: %r" % out["warnings"])
        check(upstream_paths(up) == [], "the upstream saw %r" % upstream_paths(up))


def test_python_elasticsearch_7_17_over_tls_with_the_test_ca():
    with Certs() as certs, Upstream() as up, \
            tls_keygate(certs, "--upstream", up.url, "--admin-password", bcrypt_hash(PW), "--api-key-info",
                        "keygate") as kg:
        out = run_py7(kg, "keys", certs)
        kid = body_of(out, "create")["id"]
        check(body_of(out, "key_authenticate").get("api_key") == {"id": kid, "name": "py-key"},
              "authenticate with the key over TLS: %r" % out["key_authenticate"])
        check(body_of(out, "data").get("path") == "/data/x", "GET /data/x with the key over TLS: %r" % out["data"])
        check(not [w for w in out["warnings"] if "verify" in w.lower() or "insecure" in w.lower()],
              "TLS warnings from the client: %r" % out["warnings"])
        check(upstream_paths(up) == [("GET", "/data/x")], "the upstream saw %r" % upstream_paths(up))
