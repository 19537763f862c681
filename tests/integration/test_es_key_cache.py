"""The ApiKey hot path (src/api_es.c's index, and the worker's cache of
presented keys in lib/tokcache.c): a key checked once is served from the
worker's cache on the next requests (keygate runs one worker here, so every
request of these tests meets the same cache), and every change to the stored
key (invalidation, new privileges), its expiration or a wrong secret is seen
on the very next request, with nothing reaching the upstream."""
import base64
import json
import time

from harness import Client, Keygate, Upstream, bcrypt_hash, check, request

PW = "es-admin-pw"


def elastic():
    return ("Authorization", "Basic " + base64.b64encode(("elastic:" + PW).encode()).decode())


def es_kg(up):
    return Keygate("--upstream", up.url, "--admin-password", bcrypt_hash(PW))


def app_get(resource):
    return {"r": {"cluster": [], "indices": [],
                  "applications": [{"application": "keygate", "privileges": ["GET"], "resources": [resource]}]}}


def create_key(kg, descriptors):
    body = json.dumps({"name": "hot", "role_descriptors": descriptors}).encode()
    r = request(kg.port, "POST", "/_security/api_key", [elastic(), ("Content-Type", "application/json")], body=body)
    check(r.status == 200, "create key: %d %r" % (r.status, r.body[:300]))
    return r.json()


def apikey(encoded):
    return ("Authorization", "ApiKey " + encoded)


def forged(key, secret):
    return apikey(base64.b64encode(("%s:%s" % (key["id"], secret)).encode()).decode())


def test_es_key_invalidated_after_use_is_refused_on_the_next_request():
    with Upstream() as up, es_kg(up) as kg, Client(kg.port) as c:
        key = create_key(kg, app_get("/a/*"))
        for i in range(3):  # the first compiles the slot, the others use it
            r = c.request("GET", "/a/%d" % i, [apikey(key["encoded"])])
            check(r.status == 200, "request %d with a fresh key: %d %r" % (i, r.status, r.body[:200]))
        before = len(up.requests())
        body = json.dumps({"ids": [key["id"]]}).encode()
        r = request(kg.port, "DELETE", "/_security/api_key", [elastic(), ("Content-Type", "application/json")],
                    body=body)
        check(r.status == 200 and r.json().get("invalidated_api_keys") == [key["id"]],
              "invalidate: %d %r" % (r.status, r.body[:300]))
        r = c.request("GET", "/a/after", [apikey(key["encoded"])])
        check(r.status == 401, "an invalidated key must be refused at once, got %d %r" % (r.status, r.body[:200]))
        check(r.json()["error"]["type"] == "security_exception", "ES error body: %r" % r.body[:300])
        check(len(up.requests()) == before, "the upstream received %r after the invalidation"
              % up.requests()[before:])


def test_es_key_update_of_privileges_applies_on_the_next_request():
    with Upstream() as up, es_kg(up) as kg, Client(kg.port) as c:
        key = create_key(kg, app_get("/a/*"))
        r = c.request("GET", "/a/x", [apikey(key["encoded"])])
        check(r.status == 200, "GET /a/x allowed before the update: %d %r" % (r.status, r.body[:200]))
        body = json.dumps({"role_descriptors": app_get("/b/*")}).encode()
        r = request(kg.port, "PUT", "/_security/api_key/" + key["id"], [elastic(), ("Content-Type", "application/json")],
                    body=body)
        check(r.status == 200 and r.json().get("updated") is True, "update: %d %r" % (r.status, r.body[:300]))
        before = len(up.requests())
        r = c.request("GET", "/a/x", [apikey(key["encoded"])])
        check(r.status == 403, "GET /a/x after the key lost it: want 403, got %d %r" % (r.status, r.body[:200]))
        check("is unauthorized for API key id [%s] of user [elastic]" % key["id"] in r.body.decode(),
              "403 reason: %r" % r.body[:300])
        check(len(up.requests()) == before, "the upstream received %r" % up.requests()[before:])
        r = c.request("GET", "/b/x", [apikey(key["encoded"])])
        check(r.status == 200, "GET /b/x after the key gained it: %d %r" % (r.status, r.body[:200]))


def test_es_key_wrong_secret_is_refused_even_when_the_key_is_compiled():
    with Upstream() as up, es_kg(up) as kg, Client(kg.port) as c:
        key = create_key(kg, app_get("/a/*"))
        r = c.request("GET", "/a/x", [apikey(key["encoded"])])
        check(r.status == 200, "right secret: %d" % r.status)
        before = len(up.requests())
        wrong = key["api_key"][:-1] + ("A" if key["api_key"][-1] != "A" else "B")
        for cred in (forged(key, wrong), forged(key, key["api_key"] + "x"), forged(key, key["api_key"][:-1]),
                     forged({"id": key["id"][:-1] + "Z"}, key["api_key"])):
            r = c.request("GET", "/a/x", [cred])
            check(r.status == 401, "wrong secret or id: want 401, got %d %r" % (r.status, r.body[:200]))
        unknown = forged({"id": "no-such-key-id-at-all"}, key["api_key"])
        r1 = request(kg.port, "GET", "/a/x", [unknown])
        r2 = request(kg.port, "GET", "/a/x", [forged(key, wrong)])
        check(r1.status == r2.status == 401 and r1.body == r2.body,
              "unknown id and wrong secret must read alike: %r vs %r" % (r1.body, r2.body))
        check(len(up.requests()) == before, "the upstream received %r" % up.requests()[before:])


def invalidate(kg, key):
    body = json.dumps({"ids": [key["id"]]}).encode()
    r = request(kg.port, "DELETE", "/_security/api_key", [elastic(), ("Content-Type", "application/json")], body=body)
    check(r.status == 200 and r.json().get("invalidated_api_keys") == [key["id"]],
          "invalidate: %d %r" % (r.status, r.body[:300]))


def use_several_times(c, key, path="/a/"):
    for i in range(5):  # the first checks the secret and caches the key, the others are served from the cache
        r = c.request("GET", "%s%d" % (path, i), [apikey(key["encoded"])])
        check(r.status == 200, "use %d of a good key: %d %r" % (i, r.status, r.body[:200]))


def test_es_key_served_from_the_worker_cache_is_refused_on_the_next_request_after_invalidation():
    with Upstream() as up, es_kg(up) as kg, Client(kg.port) as c, Client(kg.port) as other:
        key = create_key(kg, app_get("/a/*"))
        use_several_times(c, key)
        use_several_times(other, key)  # a second connection: the same worker's cache
        before = len(up.requests())
        invalidate(kg, key)
        for conn in (c, other):
            r = conn.request("GET", "/a/after", [apikey(key["encoded"])])
            check(r.status == 401, "a cached key invalidated must be refused on the next request, got %d %r"
                  % (r.status, r.body[:200]))
            check("api key has been invalidated" in r.body.decode(), "the 401 says why: %r" % r.body[:300])
        check(len(up.requests()) == before, "the upstream received %r after the invalidation"
              % up.requests()[before:])


def test_es_key_served_from_the_worker_cache_loses_a_removed_grant_on_the_next_request():
    with Upstream() as up, es_kg(up) as kg, Client(kg.port) as c:
        key = create_key(kg, app_get("/a/*"))
        use_several_times(c, key)
        # descriptors that grant no application privilege at all
        body = json.dumps({"role_descriptors": {"r": {"cluster": [], "indices": []}}}).encode()
        r = request(kg.port, "PUT", "/_security/api_key/" + key["id"], [elastic(), ("Content-Type", "application/json")],
                    body=body)
        check(r.status == 200 and r.json().get("updated") is True, "update: %d %r" % (r.status, r.body[:300]))
        before = len(up.requests())
        r = c.request("GET", "/a/after", [apikey(key["encoded"])])
        check(r.status == 403, "a cached key whose grant was removed: want 403, got %d %r" % (r.status, r.body[:200]))
        check("is unauthorized for API key id [%s]" % key["id"] in r.body.decode(), "403 reason: %r" % r.body[:300])
        check(len(up.requests()) == before, "the upstream received %r after the update" % up.requests()[before:])


def test_es_key_served_from_the_worker_cache_is_refused_from_its_expiration_on():
    with Upstream() as up, es_kg(up) as kg, Client(kg.port) as c:
        body = json.dumps({"name": "short", "expiration": "1500ms", "role_descriptors": app_get("/a/*")}).encode()
        r = request(kg.port, "POST", "/_security/api_key", [elastic(), ("Content-Type", "application/json")], body=body)
        check(r.status == 200, "create a key expiring in 1.5 s: %d %r" % (r.status, r.body[:300]))
        key = r.json()
        use_several_times(c, key)
        check(time.time() * 1000 < key["expiration"], "the uses took longer than the key lives: slow machine")
        before = len(up.requests())
        while time.time() * 1000 < key["expiration"] + 20:  # bounded: the key expires 1.5 s after it was made
            time.sleep(0.02)
        r = c.request("GET", "/a/after", [apikey(key["encoded"])])
        check(r.status == 401, "a cached key past its expiration: want 401, got %d %r" % (r.status, r.body[:200]))
        check("api key is expired" in r.body.decode(), "the 401 says why: %r" % r.body[:300])
        check(len(up.requests()) == before, "the upstream received %r after the expiration" % up.requests()[before:])


def test_es_key_cached_then_presented_with_another_secret_or_spelling_is_checked_in_full():
    with Upstream() as up, es_kg(up) as kg, Client(kg.port) as c:
        key = create_key(kg, app_get("/a/*"))
        use_several_times(c, key)
        before = len(up.requests())
        enc = key["encoded"]
        wrong = key["api_key"][:-1] + ("A" if key["api_key"][-1] != "A" else "B")
        # the cached credential with only its first character changed: the
        # whole credential is compared, never a hash or a tail of it
        same_tail = ("A" if enc[0] != "A" else "B") + enc[1:]
        for cred in (forged(key, wrong), apikey(same_tail)):
            r = c.request("GET", "/a/x", [cred])
            check(r.status == 401, "%r: want 401, got %d %r" % (cred, r.status, r.body[:200]))
        check(len(up.requests()) == before, "the upstream received %r" % up.requests()[before:])
        r = c.request("GET", "/a/x", [apikey(enc)])
        check(r.status == 200, "the good key still works: %d" % r.status)
