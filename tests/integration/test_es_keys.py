"""Elasticsearch's API key APIs over raw HTTP (issue 13): create (the seed's
examples verbatim), the ApiKey credential on proxied routes and on
/_security, get, invalidate, update, bulk update, query, _authenticate, and
ES's answers for unknown paths and methods. Known answers come from
/work/shared/reference/elasticsearch-api-keys.md and the seeds 003/004.
Privileges with real users and roles are in test_es_keys_privileges.py."""
import base64
import json
import re
import threading
import time

from harness import Keygate, Upstream, bcrypt_hash, check, request

PW = "elastic-admin-pw"
BAD_CREDS = ("unable to authenticate with provided credentials and anonymous access is not allowed "
             "for this request")
CHALLENGES = ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey"]
KEY_FIELDS = ["id", "name", "type", "creation", "invalidated", "username", "realm", "realm_type",
              "metadata", "role_descriptors"]
ID_RE = re.compile(r"^[A-Za-z0-9_-]{20}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
DAY_MS = 86400 * 1000

# the application privilege that lets a key through to the upstream
GET_DATA = {"application": "keygate", "privileges": ["GET"], "resources": ["/data/*"]}


def basic(user, password):
    return ("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode())


ELASTIC = basic("elastic", PW)


def apikey(encoded):
    return ("Authorization", "ApiKey " + encoded)


def es_kg(up, *extra):
    return Keygate("--upstream", up.url, "--admin-password", bcrypt_hash(PW), *extra)


def es(kg, method, target, body=None, auth=ELASTIC, headers=()):
    """One request to keygate; a dict or list body is sent as JSON."""
    h = ([auth] if auth else []) + list(headers)
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k, _ in h):
            h.append(("Content-Type", "application/json"))
    return request(kg.port, method, target, h, body=data)


def ok(r, status=200):
    """The JSON body of a /_security answer with status, after checking ES's
    product header."""
    check(r.status == status, "expected %d, got %d: %r" % (status, r.status, r.body[:400]))
    check(r.header("X-elastic-product") == "Elasticsearch",
          "no X-elastic-product: Elasticsearch on a /_security answer: %r" % r.headers)
    return r.json()


def es_error(r, status, type_, reason, product=True):
    """r is exactly ES's error body for (status, type, reason)."""
    check(r.status == status, "expected %d %s, got %d: %r" % (status, type_, r.status, r.body[:400]))
    if product:
        check(r.header("X-elastic-product") == "Elasticsearch", "no X-elastic-product on %r" % r.headers)
    j = r.json()
    want = {"error": {"root_cause": [{"type": type_, "reason": reason}], "type": type_, "reason": reason},
            "status": status}
    check(j == want, "error body differs:\n got  %s\n want %s" % (json.dumps(j), json.dumps(want)))
    return j


def es_401(r, reason=BAD_CREDS, why=None, product=True):
    """ES's 401: the three challenges as headers and in "header", and
    additional_unsuccessful_credentials only when why is given."""
    check(r.status == 401, "expected 401, got %d: %r" % (r.status, r.body[:400]))
    check(r.header_all("WWW-Authenticate") == CHALLENGES,
          "WWW-Authenticate headers %r, want %r" % (r.header_all("WWW-Authenticate"), CHALLENGES))
    if product:
        check(r.header("X-elastic-product") == "Elasticsearch", "no X-elastic-product on %r" % r.headers)
    inner = {"type": "security_exception", "reason": reason}
    if why:
        inner["additional_unsuccessful_credentials"] = "API key: " + why
    inner["header"] = {"WWW-Authenticate": CHALLENGES}
    want = {"error": dict(root_cause=[dict(inner)], **inner), "status": 401}
    j = r.json()
    check(j == want, "401 body differs:\n got  %s\n want %s" % (json.dumps(j), json.dumps(want)))


def create(kg, body, auth=ELASTIC):
    return ok(es(kg, "POST", "/_security/api_key", body, auth))


def get_keys(kg, query="", auth=ELASTIC, status=200):
    return ok(es(kg, "GET", "/_security/api_key" + query, auth=auth), status)["api_keys"]


def ids_of(keys):
    return sorted(k["id"] for k in keys)


def check_created(k, name, expiration=False):
    want = ["id", "name"] + (["expiration"] if expiration else []) + ["api_key", "encoded"]
    check(list(k) == want, "create answer fields %r, want %r" % (list(k), want))
    check(k["name"] == name, "name %r, want %r" % (k["name"], name))
    check(ID_RE.match(k["id"]), "id %r is not 20 URL-safe base64 characters" % k["id"])
    check(SECRET_RE.match(k["api_key"]), "api_key %r is not 22 URL-safe base64 characters" % k["api_key"])
    enc = base64.b64encode(("%s:%s" % (k["id"], k["api_key"])).encode()).decode()
    check(k["encoded"] == enc and len(enc) == 60 and enc.endswith("=="),
          "encoded %r, want standard base64 of id:api_key %r (60 chars, ==)" % (k["encoded"], enc))


def upstream_paths(up):
    return [t for _, _, t in up.requests()]


# ---------------------------------------------------------------- create

# seed 003/004's first example, verbatim
SEED_CREATE = b"""{
"name": "my-api-key",
"expiration": "1d",
"role_descriptors": {
"role-a": {
"cluster": ["all"],
"indices": [
{
"names": ["index-a*"],
"privileges": ["read"]
}
]
},
"role-b": {
"cluster": ["all"],
"indices": [
{
"names": ["index-b*"],
"privileges": ["all"]
}
]
}
},
"metadata": {
"application": "my-application",
"environment": {
"level": 1,
"trusted": true,
"tags": ["dev", "staging"]
}
}
}"""

# seed 004's restriction example, verbatim
SEED_RESTRICTED = b"""{
"name": "my-restricted-api-key",
"role_descriptors": {
"my-restricted-role-descriptor": {
"indices": [
{
"names": ["my-search-app"],
"privileges": ["read"]
}
],
"restriction": {
"workflows": ["search_application_query"]
}
}
}
}"""


def descriptor(cluster=(), indices=(), applications=(), **more):
    d = {"cluster": list(cluster), "indices": list(indices), "applications": list(applications), "run_as": [],
         "metadata": {}, "transient_metadata": {"enabled": True}}
    d.update(more)
    return d


def test_the_seed_create_example_answers_es_formats_and_is_stored_faithfully():
    with Upstream() as up, es_kg(up) as kg:
        t0 = int(time.time() * 1000)
        k = create(kg, SEED_CREATE)
        t1 = int(time.time() * 1000)
        check_created(k, "my-api-key", expiration=True)
        check(t0 + DAY_MS <= k["expiration"] <= t1 + DAY_MS,
              "expiration %d is not now + 1d in epoch ms (%d..%d)" % (k["expiration"], t0 + DAY_MS, t1 + DAY_MS))
        keys = get_keys(kg, "?id=" + k["id"])
        check(len(keys) == 1, "get by id: %r" % keys)
        g = keys[0]
        check(list(g) == KEY_FIELDS[:4] + ["expiration"] + KEY_FIELDS[4:],
              "get fields %r" % list(g))
        check(g["expiration"] == k["expiration"] and t0 <= g["creation"] <= t1 and g["type"] == "rest" and
              g["invalidated"] is False and g["username"] == "elastic" and g["realm"] == "reserved" and
              g["realm_type"] == "reserved", "get: %r" % g)
        check(g["metadata"] == {"application": "my-application",
                                "environment": {"level": 1, "trusted": True, "tags": ["dev", "staging"]}},
              "metadata not kept as sent: %r" % g["metadata"])
        want = {
            "role-a": descriptor(["all"], [{"names": ["index-a*"], "privileges": ["read"],
                                            "allow_restricted_indices": False}]),
            "role-b": descriptor(["all"], [{"names": ["index-b*"], "privileges": ["all"],
                                            "allow_restricted_indices": False}]),
        }
        check(g["role_descriptors"] == want, "role_descriptors %s, want %s"
              % (json.dumps(g["role_descriptors"]), json.dumps(want)))
        check("hash" not in g and "limited_by" not in g, "get shows the hash or limited_by: %r" % list(g))


def test_the_seed_restriction_example_is_stored_with_its_workflow():
    with Upstream() as up, es_kg(up) as kg:
        k = create(kg, SEED_RESTRICTED)
        check_created(k, "my-restricted-api-key")
        g = get_keys(kg, "?id=" + k["id"])[0]
        want = {"my-restricted-role-descriptor": descriptor(
            [], [{"names": ["my-search-app"], "privileges": ["read"], "allow_restricted_indices": False}],
            restriction={"workflows": ["search_application_query"]})}
        check(g["role_descriptors"] == want, "role_descriptors %s, want %s"
              % (json.dumps(g["role_descriptors"]), json.dumps(want)))
        check("expiration" not in g, "a key created without expiration has one: %r" % g)


def test_the_seed_curl_use_reaches_the_upstream_with_a_key_granting_keygate_get():
    with Upstream() as up, es_kg(up) as kg:
        k = create(kg, {"name": "reader", "role_descriptors": {"r": {"applications": [GET_DATA]}}})
        # curl -H "Authorization: ApiKey <encoded>" http://localhost:9200/...
        r = request(kg.port, "GET", "/data/health?pretty", [apikey(k["encoded"])])
        check(r.status == 200, "the key grants GET /data/*: %d %r" % (r.status, r.body[:300]))
        h = {a.lower(): b for a, b in r.json()["headers"]}
        check(h.get("x-keygate-scheme") == "apikey" and h.get("x-keygate-principal") == k["id"],
              "identity headers upstream: %r" % h)
        check("authorization" not in h, "the key went upstream")
        check(upstream_paths(up) == ["/data/health?pretty"], "upstream saw %r" % up.requests())


def test_a_key_without_the_application_privilege_is_refused_and_the_upstream_sees_nothing():
    with Upstream() as up, es_kg(up) as kg:
        k = create(kg, {"name": "reader", "role_descriptors": {"r": {"applications": [GET_DATA]}}})
        other = create(kg, SEED_CREATE)
        for key, method, path in ((k, "POST", "/data/x"), (k, "GET", "/other"), (other, "GET", "/data/x")):
            r = request(kg.port, method, path, [apikey(key["encoded"])], body=b"" if method == "POST" else None)
            es_error(r, 403, "security_exception", "action [%s %s] is unauthorized for API key id [%s] of user "
                     "[elastic]" % (method, path, key["id"]), product=False)
        check(up.requests() == [], "a refused request reached the upstream: %r" % up.requests())


def test_put_creates_a_key_and_the_answer_follows_the_compatible_media_type():
    with Upstream() as up, es_kg(up) as kg:
        for v in ("8", "9"):
            mt = "application/vnd.elasticsearch+json; compatible-with=" + v
            r = es(kg, "PUT", "/_security/api_key", {"name": "js" + v}, headers=[("Content-Type", mt), ("Accept", mt)])
            check_created(ok(r), "js" + v)
            ct = r.header("Content-Type")
            check(ct == "application/vnd.elasticsearch+json;compatible-with=" + v,
                  "Content-Type %r for Accept %r" % (ct, mt))
        r = es(kg, "PUT", "/_security/api_key", {"name": "plain"})
        ok(r)
        check(r.header("Content-Type") == "application/json", "plain request answered as %r" % r.header("Content-Type"))


def test_a_body_that_is_not_json_typed_is_406():
    with Upstream() as up, es_kg(up) as kg:
        r = es(kg, "POST", "/_security/api_key", b'{"name":"x"}', headers=[("Content-Type", "text/plain")])
        j = ok(r, 406)
        check(j == {"error": "Content-Type header [text/plain] is not supported", "status": 406}, "406 body %r" % j)
        check(get_keys(kg) == [], "a 406 request created a key")


# ---------------------------------------------------------------- authenticating with a key

def test_unknown_id_and_wrong_secret_give_the_same_401_and_the_log_says_why():
    with Upstream() as up, es_kg(up) as kg:
        k = create(kg, {"name": "k", "role_descriptors": {"r": {"applications": [GET_DATA]}}})
        wrong = base64.b64encode(("%s:%s" % (k["id"], "A" * 22)).encode()).decode()
        unknown = base64.b64encode(("%s:%s" % ("B" * 20, k["api_key"])).encode()).decode()
        bodies = []
        for cred in (wrong, unknown):
            mark = kg.log_mark()
            r = request(kg.port, "GET", "/data/x", [apikey(cred)])
            es_401(r, product=False)
            bodies.append(r.body)
            key_id = base64.b64decode(cred).decode().split(":")[0]
            kg.wait_for_log(r"API key \[%s\] refused: invalid credentials" % key_id, since=mark)
            mark = kg.log_mark()
            r = es(kg, "GET", "/_security/_authenticate", auth=apikey(cred))
            es_401(r)
            bodies.append(r.body)
            kg.wait_for_log(r"elasticsearch: API key \[%s\] refused: invalid credentials" % key_id, since=mark)
        check(len(set(bodies)) == 1, "unknown id and wrong secret answered differently: %r" % bodies)
        es_401(es(kg, "GET", "/_security/_authenticate", auth=apikey("not base64!")))
        # an id is logged only in its own alphabet: no client can forge a log line
        mark = kg.log_mark()
        forged = base64.b64encode(b"x\n2026-01-01 info: forged:" + k["api_key"].encode()).decode()
        es_401(es(kg, "GET", "/_security/_authenticate", auth=apikey(forged)))
        kg.wait_for_log(r"elasticsearch: API key \[x\?2026-01-01\?info\] refused", since=mark)
        mark = kg.log_mark()
        es_401(request(kg.port, "GET", "/data/x", [apikey(forged)]), product=False)
        kg.wait_for_log(r"API key \[x\?2026-01-01\?info\] refused", since=mark)
        check("\n2026-01-01 info" not in kg.stderr_text(), "a client wrote its own log line through a key id")
        check(up.requests() == [], "a refused key reached the upstream: %r" % up.requests())


def test_an_invalidated_key_is_refused_at_once_saying_why_only_to_its_holder():
    with Upstream() as up, es_kg(up) as kg:
        k = create(kg, {"name": "k", "role_descriptors": {"r": {"applications": [GET_DATA]}}})
        r = request(kg.port, "GET", "/data/1", [apikey(k["encoded"])])
        check(r.status == 200, "the key works before invalidation: %d" % r.status)
        ok(es(kg, "DELETE", "/_security/api_key", {"ids": [k["id"]]}))
        mark = kg.log_mark()
        # the very next request, on this instance: no wait
        es_401(request(kg.port, "GET", "/data/2", [apikey(k["encoded"])]), why="api key has been invalidated",
               product=False)
        kg.wait_for_log(r"API key \[%s\] refused: api key has been invalidated" % re.escape(k["id"]), since=mark)
        mark = kg.log_mark()
        es_401(es(kg, "GET", "/_security/_authenticate", auth=apikey(k["encoded"])),
               why="api key has been invalidated")
        kg.wait_for_log(r"elasticsearch: API key \[%s\] refused: api key has been invalidated" % re.escape(k["id"]),
                        since=mark)
        # the wrong secret of an invalidated key learns nothing
        wrong = base64.b64encode(("%s:%s" % (k["id"], "A" * 22)).encode()).decode()
        es_401(request(kg.port, "GET", "/data/3", [apikey(wrong)]), product=False)
        es_401(es(kg, "GET", "/_security/_authenticate", auth=apikey(wrong)))
        check(upstream_paths(up) == ["/data/1"], "upstream saw %r" % up.requests())


def test_an_expired_key_is_refused_on_the_millisecond_saying_why():
    with Upstream() as up, es_kg(up) as kg:
        k = create(kg, {"name": "short", "expiration": "300ms", "role_descriptors": {"r": {"applications": [GET_DATA]}}})
        check_created(k, "short", expiration=True)
        while time.time() * 1000 < k["expiration"] + 20:
            time.sleep(0.02)
        mark = kg.log_mark()
        es_401(request(kg.port, "GET", "/data/x", [apikey(k["encoded"])]), why="api key is expired", product=False)
        kg.wait_for_log(r"API key \[%s\] refused: api key is expired" % re.escape(k["id"]), since=mark)
        es_401(es(kg, "GET", "/_security/_authenticate", auth=apikey(k["encoded"])), why="api key is expired")
        check(up.requests() == [], "an expired key reached the upstream: %r" % up.requests())


def test_no_credential_on_security_names_the_request():
    with Upstream() as up, es_kg(up) as kg:
        es_401(es(kg, "GET", "/_security/api_key", auth=None),
               reason="missing authentication credentials for REST request [/_security/api_key]")


# ---------------------------------------------------------------- create: refusals

def test_name_and_metadata_problems_are_numbered_validation_failures():
    with Upstream() as up, es_kg(up) as kg:
        v = "action_request_validation_exception"
        cases = [
            ({"name": ""}, "Validation Failed: 1: api key name is required;"),
            ({"name": "x" * 257}, "Validation Failed: 1: api key name may not be more than [256] characters long;"),
            ({"name": " x"}, "Validation Failed: 1: api key name may not begin or end with whitespace;"),
            ({"name": "x "}, "Validation Failed: 1: api key name may not begin or end with whitespace;"),
            ({"name": "_x"}, "Validation Failed: 1: api key name may not begin with an underscore;"),
            ({"name": "ok", "metadata": {"_private": 1}}, "Validation Failed: 1: API key metadata keys may not start with [_];"),
            ({"name": "_x", "metadata": {"_a": 1}}, "Validation Failed: 1: api key name may not begin with an underscore;"
                                                   "2: API key metadata keys may not start with [_];"),
        ]
        for body, reason in cases:
            es_error(es(kg, "POST", "/_security/api_key", body), 400, v, reason)
        check_created(create(kg, {"name": "x" * 256}), "x" * 256)
        check(len(get_keys(kg)) == 1, "a refused create stored a key: %r" % ids_of(get_keys(kg)))


def test_unknown_fields_bad_expirations_and_unknown_privileges_are_400():
    with Upstream() as up, es_kg(up) as kg:
        es_error(es(kg, "POST", "/_security/api_key", b'{"name":"x","foo":1}'), 400, "x_content_parse_exception",
                 "[1:13] [api_key_request] unknown field [foo]")
        es_error(es(kg, "POST", "/_security/api_key", {"name": "x", "expiration": "1x"}), 400,
                 "illegal_argument_exception",
                 "failed to parse setting [expiration] with value [1x] as a time value: unit is missing or unrecognized")
        es_error(es(kg, "POST", "/_security/api_key", {"name": "x", "expiration": "-5d"}), 400,
                 "illegal_argument_exception",
                 "failed to parse setting [expiration] with value [-5d] as a time value: negative durations are not "
                 "supported")
        r = es(kg, "POST", "/_security/api_key", {"name": "x", "expiration": "d"})
        check(r.status == 400, "expiration d: %d %r" % (r.status, r.body[:200]))
        check("[d]" in ok(r, 400)["error"]["reason"], "the refusal of [d] does not name it: %r" % r.body[:300])
        r = es(kg, "POST", "/_security/api_key", {"name": "x", "role_descriptors": {"r": {"cluster": ["bogus"]}}})
        j = ok(r, 400)
        check(j["error"]["type"] == "action_request_validation_exception" and
              j["error"]["reason"].startswith("Validation Failed: 1: unknown cluster privilege [bogus]"),
              "unknown privilege: %r" % j)
        es_error(es(kg, "POST", "/_security/api_key", {"name": "x", "role_descriptors": {
            "a": {"restriction": {"workflows": ["nope"]}}}}), 400, "action_request_validation_exception",
            "Validation Failed: 1: Unknown workflow [nope]. A workflow must be one of the predefined workflow names "
            "[search_application_query,search_application_analytics].;")
        check(get_keys(kg) == [], "a refused create stored a key")


def test_max_expiration_gives_keys_a_lifetime_and_refuses_longer_ones():
    with Upstream() as up, es_kg(up, "--api-key-max-expiration", "1d") as kg:
        t0 = int(time.time() * 1000)
        k = create(kg, {"name": "forever"})
        t1 = int(time.time() * 1000)
        check_created(k, "forever", expiration=True)
        check(t0 + DAY_MS <= k["expiration"] <= t1 + DAY_MS, "expiration %d is not now + 1d" % k["expiration"])
        check_created(create(kg, {"name": "hour", "expiration": "1h"}), "hour", expiration=True)
        es_error(es(kg, "POST", "/_security/api_key", {"name": "long", "expiration": "2d"}), 400,
                 "illegal_argument_exception", "API key expiration exceeds the maximum lifetime keygate allows "
                 "(api_key.max_expiration: 86400000 ms)")
        es_error(es(kg, "PUT", "/_security/api_key/" + k["id"], {"expiration": "2d"}), 400,
                 "illegal_argument_exception", "API key expiration exceeds the maximum lifetime keygate allows "
                 "(api_key.max_expiration: 86400000 ms)")
        check(ok(es(kg, "PUT", "/_security/api_key/" + k["id"], {"expiration": "2h"})) == {"updated": True},
              "an update within the limit was refused")
        check(sorted(x["name"] for x in get_keys(kg)) == ["forever", "hour"], "keys %r" % get_keys(kg))


DERIVED = ("creating derived api keys requires an explicit role descriptor that is empty (has no privileges)")


def test_a_key_may_create_only_a_key_with_an_explicitly_empty_descriptor():
    with Upstream() as up, es_kg(up) as kg:
        parent = create(kg, {"name": "parent", "role_descriptors": {
            "p": {"cluster": ["manage_own_api_key"], "applications": [GET_DATA]}}})
        auth = apikey(parent["encoded"])
        for body in ({"name": "d"}, {"name": "d", "role_descriptors": {}},
                     {"name": "d", "role_descriptors": {"r": {"cluster": ["manage_own_api_key"]}}},
                     {"name": "d", "role_descriptors": {"r": {"applications": [GET_DATA]}}}):
            es_error(es(kg, "POST", "/_security/api_key", body, auth), 400, "illegal_argument_exception", DERIVED)
        child = create(kg, {"name": "child", "role_descriptors": {"r": {}}}, auth)
        check_created(child, "child")
        g = get_keys(kg, "?id=%s&with_limited_by=true" % child["id"])[0]
        check(g["username"] == "elastic" and g["role_descriptors"] == {"r": descriptor()},
              "derived key: %r" % g)
        # it authenticates, and grants nothing upstream
        r = es(kg, "GET", "/_security/_authenticate", auth=apikey(child["encoded"]))
        check(ok(r)["api_key"] == {"id": child["id"], "name": "child"}, "derived key authenticates: %r" % r.body)
        r = request(kg.port, "GET", "/data/x", [apikey(child["encoded"])])
        check(r.status == 403, "a derived key reached the upstream: %d" % r.status)
        check(up.requests() == [], "upstream saw %r" % up.requests())


# ---------------------------------------------------------------- get

def test_get_filters_by_id_name_username_realm_owner_and_active_only():
    with Upstream() as up, es_kg(up) as kg:
        a = create(kg, {"name": "app-one"})
        b = create(kg, {"name": "app-two"})
        c = create(kg, {"name": "other"})
        ok(es(kg, "DELETE", "/_security/api_key", {"ids": [c["id"]]}))
        check(ids_of(get_keys(kg)) == ids_of([a, b, c]), "all keys")
        check(ids_of(get_keys(kg, "?id=" + b["id"])) == [b["id"]], "by id")
        check(ids_of(get_keys(kg, "?name=app-*")) == ids_of([a, b]), "by name prefix")
        check(ids_of(get_keys(kg, "?name=*")) == ids_of([a, b, c]), "name=*")
        check(ids_of(get_keys(kg, "?name=other")) == [c["id"]], "by exact name")
        check(ids_of(get_keys(kg, "?username=elastic")) == ids_of([a, b, c]), "by username")
        check(get_keys(kg, "?username=nobody") == [], "unknown username")
        check(ids_of(get_keys(kg, "?realm_name=reserved")) == ids_of([a, b, c]), "by realm")
        check(get_keys(kg, "?realm_name=default_native") == [], "other realm")
        check(ids_of(get_keys(kg, "?owner=true")) == ids_of([a, b, c]), "owner=true")
        check(ids_of(get_keys(kg, "?active_only=true")) == ids_of([a, b]), "active_only")
        check(ids_of(get_keys(kg, "?active_only")) == ids_of([a, b]), "active_only without value is true")
        inv = get_keys(kg, "?id=" + c["id"])[0]
        check(inv["invalidated"] is True and isinstance(inv.get("invalidation"), int),
              "an invalidated key shows invalidated and invalidation (ms): %r" % inv)
        es_error(es(kg, "GET", "/_security/api_key?bogus=1"), 400, "illegal_argument_exception",
                 "request [/_security/api_key] contains unrecognized parameter: [bogus]")


def test_get_of_an_unknown_id_is_404_with_an_empty_list():
    with Upstream() as up, es_kg(up) as kg:
        create(kg, {"name": "k"})
        r = es(kg, "GET", "/_security/api_key?id=nope")
        check(ok(r, 404) == {"api_keys": []}, "404 body %r" % r.body)
        check(ok(es(kg, "GET", "/_security/api_key?name=nope")) == {"api_keys": []}, "no match by name is 200 []")


def test_get_normalises_descriptors_and_shows_limited_by_only_when_asked():
    with Upstream() as up, es_kg(up) as kg:
        k = create(kg, {"name": "n", "role_descriptors": {
            "r1": {"index": [{"names": "logs-*", "privileges": ["read"]}]},
            "r2": {"applications": [GET_DATA]}}})
        bare = create(kg, {"name": "bare"})
        empty = create(kg, {"name": "empty", "role_descriptors": {}})
        g = get_keys(kg, "?id=" + k["id"])[0]
        want = {"r1": descriptor([], [{"names": ["logs-*"], "privileges": ["read"], "allow_restricted_indices": False}]),
                "r2": descriptor([], [], [GET_DATA])}
        check(g["role_descriptors"] == want, "normalised %s, want %s" % (json.dumps(g["role_descriptors"]),
                                                                        json.dumps(want)))
        check("limited_by" not in g, "limited_by without with_limited_by")
        for key in (bare, empty):
            check(get_keys(kg, "?id=" + key["id"])[0]["role_descriptors"] == {},
                  "a key without descriptors shows role_descriptors {}")
        g = get_keys(kg, "?id=%s&with_limited_by=true" % k["id"])[0]
        lb = g.get("limited_by")
        check(isinstance(lb, list) and len(lb) == 1 and list(lb[0]) == ["superuser"] and
              lb[0]["superuser"]["cluster"] == ["all"], "limited_by %r" % lb)
        check(list(g)[-1] == "limited_by", "limited_by comes last: %r" % list(g))


# ---------------------------------------------------------------- invalidate

def test_invalidate_by_each_filter_and_report_previously_invalidated():
    with Upstream() as up, es_kg(up) as kg:
        ks = [create(kg, {"name": n}) for n in ("a", "b", "c", "d", "e", "f")]
        inv = lambda body: ok(es(kg, "DELETE", "/_security/api_key", body))  # noqa: E731
        want = lambda done, before=(): {"invalidated_api_keys": list(done),  # noqa: E731
                                         "previously_invalidated_api_keys": list(before), "error_count": 0}
        j = inv({"ids": [ks[0]["id"], ks[1]["id"]]})
        check(sorted(j["invalidated_api_keys"]) == ids_of(ks[:2]) and j["previously_invalidated_api_keys"] == [] and
              j["error_count"] == 0, "by ids: %r" % j)
        j = inv({"id": ks[2]["id"]})
        check(j == want([ks[2]["id"]]), "by id (the older field): %r" % j)
        j = inv({"name": "d"})
        check(j == want([ks[3]["id"]]), "by name: %r" % j)
        j = inv({"ids": [ks[0]["id"]]})
        check(j == want([], [ks[0]["id"]]), "again: previously_invalidated: %r" % j)
        j = inv({"ids": ["nope"]})
        check(j == want([]), "unknown id: %r" % j)
        j = inv({"username": "elastic", "realm_name": "reserved"})
        check(sorted(j["invalidated_api_keys"]) == sorted([ks[4]["id"], ks[5]["id"]]) and
              len(j["previously_invalidated_api_keys"]) == 4 and j["error_count"] == 0,
              "by username and realm: %r" % j)
        k = create(kg, {"name": "g"})
        j = inv({"owner": True})
        check(j["invalidated_api_keys"] == [k["id"]] and
              sorted(j["previously_invalidated_api_keys"]) == ids_of(ks), "owner=true: %r" % j)
        check(get_keys(kg, "?active_only=true") == [], "every key is invalidated")
        k = create(kg, {"name": "h"})
        check(inv({"realm_name": "reserved"})["invalidated_api_keys"] == [k["id"]], "by realm_name")


def test_invalidate_without_a_filter_is_a_validation_error():
    with Upstream() as up, es_kg(up) as kg:
        create(kg, {"name": "k"})
        reason = ("Validation Failed: 1: One of [api key id(s), api key name, username, realm name] must be "
                  "specified if [owner] flag is false;")
        for body in ({}, {"owner": False}, {"name": ""}):
            es_error(es(kg, "DELETE", "/_security/api_key", body), 400, "action_request_validation_exception",
                     reason)
        check(get_keys(kg, "?active_only=true") != [], "a refused invalidation invalidated")


# ---------------------------------------------------------------- update

def test_update_answers_updated_then_false_and_empty_objects_clear():
    with Upstream() as up, es_kg(up) as kg:
        k = create(kg, {"name": "u", "metadata": {"a": 1},
                        "role_descriptors": {"r": {"applications": [GET_DATA]}}})
        upd = lambda body: ok(es(kg, "PUT", "/_security/api_key/" + k["id"], body))  # noqa: E731
        check(upd({}) == {"updated": False}, "an empty update of an unchanged key is a noop")
        check(upd({"metadata": {"b": 2}}) == {"updated": True}, "metadata changed")
        check(upd({"metadata": {"b": 2}}) == {"updated": False}, "same metadata again")
        g = get_keys(kg, "?id=" + k["id"])[0]
        check(g["metadata"] == {"b": 2}, "metadata replaced: %r" % g["metadata"])
        check(upd(b"") == {"updated": False}, "an update without a body")
        check(upd({"metadata": {}, "role_descriptors": {}}) == {"updated": True}, "clearing")
        g = get_keys(kg, "?id=" + k["id"])[0]
        check(g["metadata"] == {} and g["role_descriptors"] == {}, "{} clears: %r" % g)
        check(upd({"expiration": "1d"}) == {"updated": True}, "expiration set")
        check("expiration" in get_keys(kg, "?id=" + k["id"])[0], "expiration stored")


def test_update_refuses_unknown_invalidated_and_expired_keys_and_key_credentials():
    with Upstream() as up, es_kg(up) as kg:
        k = create(kg, {"name": "k"})
        gone = create(kg, {"name": "gone"})
        short = create(kg, {"name": "short", "expiration": "1ms"})
        ok(es(kg, "DELETE", "/_security/api_key", {"ids": [gone["id"]]}))
        time.sleep(0.01)
        es_error(es(kg, "PUT", "/_security/api_key/nope", {}), 404, "resource_not_found_exception",
                 "no API key owned by requesting user found for ID [nope]")
        es_error(es(kg, "PUT", "/_security/api_key/" + gone["id"], {}), 400, "illegal_argument_exception",
                 "cannot update invalidated API key [%s]" % gone["id"])
        es_error(es(kg, "PUT", "/_security/api_key/" + short["id"], {}), 400, "illegal_argument_exception",
                 "cannot update expired API key [%s]" % short["id"])
        msg = "authentication via API key not supported: An API key cannot be used to update API keys"
        es_error(es(kg, "PUT", "/_security/api_key/" + k["id"], {}, auth=apikey(k["encoded"])), 400,
                 "illegal_argument_exception", msg)
        es_error(es(kg, "POST", "/_security/api_key/_bulk_update", {"ids": [k["id"]]}, auth=apikey(k["encoded"])),
                 400, "illegal_argument_exception", msg)


def test_an_update_racing_an_invalidation_never_brings_the_key_back():
    # updates run on the thread pool beside the invalidation: one that read
    # the key before the invalidation wrote it must not write it back valid
    with Upstream() as up, es_kg(up) as kg:
        revived = []
        for rnd in range(20):
            k = create(kg, {"name": "race%d" % rnd, "role_descriptors": {"r": {"applications": [GET_DATA]}}})
            statuses = []

            def update(i):
                statuses.append(es(kg, "PUT", "/_security/api_key/" + k["id"], {"metadata": {"i": i}}).status)

            threads = [threading.Thread(target=update, args=(i,)) for i in range(12)]
            for i, t in enumerate(threads):
                t.start()
                if i == 6:
                    ok(es(kg, "DELETE", "/_security/api_key", {"ids": [k["id"]]}))
            for t in threads:
                t.join(10)
            check(all(st in (200, 400) for st in statuses), "update statuses %r" % statuses)
            if not get_keys(kg, "?id=" + k["id"])[0]["invalidated"]:
                revived.append(k["id"])
            r = request(kg.port, "GET", "/data/x", [apikey(k["encoded"])])
            check(r.status == 401, "round %d: the invalidated key was let through: %d" % (rnd, r.status))
        check(revived == [], "%d of 20 invalidated keys came back valid: %r" % (len(revived), revived))
        check(up.requests() == [], "upstream saw %r" % up.requests())


def test_bulk_update_lists_updated_noops_and_errors_in_request_order():
    with Upstream() as up, es_kg(up) as kg:
        a, b, c = (create(kg, {"name": n}) for n in ("a", "b", "c"))
        ok(es(kg, "PUT", "/_security/api_key/" + b["id"], {"metadata": {"x": 1}}))
        ok(es(kg, "DELETE", "/_security/api_key", {"ids": [c["id"]]}))
        j = ok(es(kg, "POST", "/_security/api_key/_bulk_update",
                  {"ids": [c["id"], b["id"], "nope", a["id"]], "metadata": {"x": 1}}))
        want = {"updated": [a["id"]], "noops": [b["id"]], "errors": {"count": 2, "details": {
            c["id"]: {"type": "illegal_argument_exception", "reason": "cannot update invalidated API key [%s]" % c["id"]},
            "nope": {"type": "resource_not_found_exception",
                     "reason": "no API key owned by requesting user found for ID [nope]"}}}}
        check(j == want, "bulk: %s\n want %s" % (json.dumps(j), json.dumps(want)))
        check(list(j["errors"]["details"]) == [c["id"], "nope"], "details in request order: %r" % j)
        j = ok(es(kg, "POST", "/_security/api_key/_bulk_update", {"ids": [b["id"], a["id"]], "metadata": {"y": 2}}))
        check(j == {"updated": [b["id"], a["id"]], "noops": []}, "updated in request order, no errors: %r" % j)


# ---------------------------------------------------------------- query

def test_query_supports_the_dsl_sorting_paging_and_search_after():
    with Upstream() as up, es_kg(up) as kg:
        ks = {}
        for name, md in (("alpha", {"env": "prod", "n": 1}), ("beta", {"env": "dev", "n": 2}),
                         ("gamma", {"env": "prod", "n": 3})):
            ks[name] = create(kg, {"name": name, "metadata": md})
            time.sleep(0.002)  # distinct creation times
        create(kg, {"name": "delta", "expiration": "1d"})
        q = lambda body, path="/_security/_query/api_key", m="POST": ok(es(kg, m, path, body))  # noqa: E731
        names = lambda j: [k["name"] for k in j["api_keys"]]  # noqa: E731
        j = q({})
        check(j["total"] == 4 and j["count"] == 4 and all("_sort" not in k for k in j["api_keys"]),
              "no query: all, no _sort: %r" % j)
        check(q({"query": {"match_all": {}}})["total"] == 4, "match_all")
        check(q(None, m="GET")["total"] == 4, "GET without a body")
        j = q({"query": {"term": {"metadata.env": "prod"}}, "sort": ["name"]})
        check(names(j) == ["alpha", "gamma"] and [k["_sort"] for k in j["api_keys"]] == [["alpha"], ["gamma"]],
              "term on metadata, sorted by name: %r" % j)
        j = q({"query": {"bool": {"must": [{"prefix": {"name": "a"}}], "must_not": [{"term": {"name": "beta"}}]}}})
        check(names(j) == ["alpha"], "bool/prefix: %r" % names(j))
        check(sorted(names(q({"query": {"wildcard": {"name": "*a"}}}))) == ["alpha", "beta", "delta", "gamma"],
              "wildcard")
        check(sorted(names(q({"query": {"range": {"metadata.n": {"gte": 2}}}}))) == ["beta", "gamma"], "range")
        check(names(q({"query": {"exists": {"field": "expiration"}}})) == ["delta"], "exists")
        check(names(q({"query": {"ids": {"values": [ks["beta"]["id"]]}}})) == ["beta"], "ids")
        check(names(q({"query": {"simple_query_string": {"query": "gamma", "fields": ["name"]}}})) == ["gamma"],
              "simple_query_string")
        check(q({"query": {"term": {"username": "elastic"}}})["total"] == 4, "username")
        j = q({"sort": [{"creation": {"order": "desc"}}], "size": 2})
        check(j["total"] == 4 and j["count"] == 2 and names(j) == ["delta", "gamma"], "desc by creation: %r" % names(j))
        j2 = q({"sort": [{"creation": {"order": "desc"}}], "size": 2,
                "search_after": [str(j["api_keys"][1]["_sort"][0])]})
        check(names(j2) == ["beta", "alpha"], "search_after with a string value: %r" % names(j2))
        j = q({"sort": ["name"], "from": 1, "size": 2})
        check(j["total"] == 4 and names(j) == ["beta", "delta"], "from/size: %r" % j)
        j = q({"sort": ["name"], "search_after": ["beta"]})
        check(names(j) == ["delta", "gamma"], "search_after by name: %r" % names(j))


# ---------------------------------------------------------------- _authenticate and routing

def test_authenticate_answers_for_elastic_and_for_a_key():
    with Upstream() as up, es_kg(up) as kg:
        j = ok(es(kg, "GET", "/_security/_authenticate"))
        want = {"username": "elastic", "roles": ["superuser"], "full_name": None, "email": None,
                "metadata": {"_reserved": True}, "enabled": True,
                "authentication_realm": {"name": "reserved", "type": "reserved"},
                "lookup_realm": {"name": "reserved", "type": "reserved"}, "authentication_type": "realm"}
        check(j == want, "elastic: %s" % json.dumps(j))
        k = create(kg, {"name": "who", "metadata": {"team": "x"}})
        j = ok(es(kg, "GET", "/_security/_authenticate", auth=apikey(k["encoded"])))
        want = {"username": "elastic", "roles": [], "full_name": None, "email": None, "metadata": {},
                "enabled": True, "authentication_realm": {"name": "_es_api_key", "type": "_es_api_key"},
                "lookup_realm": {"name": "_es_api_key", "type": "_es_api_key"}, "authentication_type": "api_key",
                "api_key": {"id": k["id"], "name": "who"}}
        check(j == want, "key: %s\n want %s" % (json.dumps(j), json.dumps(want)))


def test_unknown_paths_and_methods_get_es_answers():
    with Upstream() as up, es_kg(up) as kg:
        j = ok(es(kg, "GET", "/_security/nothing_here"), 400)
        check(j == {"error": "no handler found for uri [/_security/nothing_here] and method [GET]", "status": 400},
              "no handler: %r" % j)
        j = ok(es(kg, "PATCH", "/_security/api_key"), 405)
        check(j == {"error": "Incorrect HTTP method for uri [/_security/api_key] and method [PATCH], allowed: "
                             "[GET, POST, PUT, DELETE]", "status": 405}, "405: %r" % j)
        j = ok(es(kg, "DELETE", "/_security/_authenticate"), 405)
        check(j == {"error": "Incorrect HTTP method for uri [/_security/_authenticate] and method [DELETE], allowed: "
                             "[GET]", "status": 405}, "405: %r" % j)
        j = ok(es(kg, "GET", "/_security/api_key/_bulk_update"), 405)
        check(j["error"].endswith("allowed: [POST]"), "bulk update GET: %r" % j)
        check(up.requests() == [], "upstream saw %r" % up.requests())
