"""Two keygate processes on one store (one data dir): an API key created on
one works on the other, and its invalidation on one is refused by the other
within the cache refresh (a second; every wait bounded). And retention: an
invalidated key older than api_key.retention is deleted at start-up."""
import base64
import json
import shutil
import tempfile
import time

from harness import Keygate, Upstream, check, request, bcrypt_hash

PW = "shared-pw"
ELASTIC = "Basic " + base64.b64encode(("elastic:" + PW).encode()).decode()
GET_DATA = {"r": {"applications": [{"application": "keygate", "privileges": ["GET"], "resources": ["/data/*"]}]}}


def es(port, method, path, body=None, auth=ELASTIC):
    h = [("Authorization", auth)]
    if body is not None:
        h.append(("Content-Type", "application/json"))
        body = json.dumps(body).encode()
    return request(port, method, path, h, body)


def create_key(port, name):
    r = es(port, "POST", "/_security/api_key", {"name": name, "role_descriptors": GET_DATA})
    check(r.status == 200, "create %s: %d %r" % (name, r.status, r.body))
    return r.json()


def test_es_key_invalidated_on_one_instance_is_refused_by_another_on_the_same_store_within_a_second():
    h = bcrypt_hash(PW)
    with Upstream() as up, Keygate("--upstream", up.url, "--admin-password", h) as a:
        with Keygate("--upstream", up.url, "--admin-password", h, "--data-dir", a.data_dir) as b:
            key = create_key(a.port, "shared")
            auth = "ApiKey " + key["encoded"]
            deadline = time.monotonic() + 5
            r = request(b.port, "GET", "/data/1", [("Authorization", auth)])
            while r.status != 200 and time.monotonic() < deadline:
                time.sleep(0.05)  # polling the other process's refresh, bounded
                r = request(b.port, "GET", "/data/1", [("Authorization", auth)])
            check(r.status == 200, "a key made on A works on B once B refreshed: %d %r" % (r.status, r.body))
            r = es(a.port, "DELETE", "/_security/api_key", {"ids": [key["id"]]})
            check(r.status == 200 and r.json()["invalidated_api_keys"] == [key["id"]], "invalidate on A: %r" % r.body)
            r = request(a.port, "GET", "/data/2", [("Authorization", auth)])
            check(r.status == 401, "A refuses at once: %d" % r.status)
            t0 = time.monotonic()
            r = request(b.port, "GET", "/data/3", [("Authorization", auth)])
            while r.status == 200 and time.monotonic() - t0 < 5:
                time.sleep(0.05)
                r = request(b.port, "GET", "/data/3", [("Authorization", auth)])
            took = time.monotonic() - t0
            check(r.status == 401, "B must refuse the invalidated key: %d" % r.status)
            body = r.json()
            check(body["error"]["type"] == "security_exception", "B answers ES's 401: %r" % body)
            check(took < 3, "B refused only after %.1f s (the cache refreshes every second)" % took)
            seen = [q[2] for q in up.requests()]
            check("/data/2" not in seen, "the upstream saw a request with the invalidated key: %r" % seen)


def test_es_invalidated_keys_older_than_the_retention_are_deleted_and_others_kept():
    h = bcrypt_hash(PW)
    data = tempfile.mkdtemp(prefix="keygate-es-")
    try:
        with Upstream() as up:
            with Keygate("--upstream", up.url, "--admin-password", h, "--data-dir", data) as a:
                old = create_key(a.port, "old")
                live = create_key(a.port, "live")
                r = es(a.port, "DELETE", "/_security/api_key", {"ids": [old["id"]]})
                check(r.status == 200, "invalidate: %r" % r.body)
            # a restart with the default retention (7 days) keeps the invalidated key visible
            with Keygate("--upstream", up.url, "--admin-password", h, "--data-dir", data) as b:
                r = es(b.port, "GET", "/_security/api_key?id=" + old["id"])
                check(r.status == 200 and r.json()["api_keys"][0]["invalidated"] is True,
                      "within the retention the key is still listed: %d %r" % (r.status, r.body))
            with Keygate("--upstream", up.url, "--admin-password", h, "--data-dir", data,
                         "--api-key-retention", "0") as c:
                r = es(c.port, "GET", "/_security/api_key?id=" + old["id"])
                check(r.status == 404 and r.json() == {"api_keys": []},
                      "past the retention the key is deleted at start-up: %d %r" % (r.status, r.body))
                r = es(c.port, "GET", "/_security/api_key?id=" + live["id"])
                check(r.status == 200 and r.json()["api_keys"][0]["invalidated"] is False,
                      "an active key is kept whatever the retention: %d %r" % (r.status, r.body))
                check("deleted 1 API keys" in c.stderr_text(), "the deletion is logged")
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_es_last_used_is_recorded_in_coalesced_writes_never_one_per_request():
    import sqlite3
    h = bcrypt_hash(PW)
    with Upstream() as up, Keygate("--upstream", up.url, "--admin-password", h) as kg:
        key = create_key(kg.port, "used")
        r = es(kg.port, "GET", "/_security/api_key?id=" + key["id"])
        check("last_used" not in r.json()["api_keys"][0], "a key never used has no last_used: %r" % r.body)
        before = int(time.time() * 1000)
        auth = [("Authorization", "ApiKey " + key["encoded"])]
        for i in range(50):
            r = request(kg.port, "GET", "/data/%d" % i, auth)
            check(r.status == 200, "use %d: %d" % (i, r.status))
        after = int(time.time() * 1000)
        deadline = time.monotonic() + 6
        used = None
        while used is None and time.monotonic() < deadline:
            got = es(kg.port, "GET", "/_security/api_key?id=" + key["id"]).json()["api_keys"][0]
            used = got.get("last_used")
            if used is None:
                time.sleep(0.1)  # bounded poll: the writes are batched every 2 s
        check(used is not None, "last_used never appeared in get")
        check(before <= used <= after + 1000, "last_used %r not within the uses [%d, %d]" % (used, before, after))
        q = es(kg.port, "POST", "/_security/_query/api_key", {"query": {"ids": {"values": [key["id"]]}}}).json()
        check(q["api_keys"][0].get("last_used") == used, "query shows last_used too: %r" % q)
        db = sqlite3.connect("file:%s/keygate.db?mode=ro" % kg.data_dir, uri=True)
        try:
            writes = db.execute("SELECT COUNT(*) FROM changes WHERE ns = 'es.last_used'").fetchone()[0]
        finally:
            db.close()
        check(1 <= writes <= 4, "50 uses became %d store writes (want a few coalesced ones)" % writes)


def wait_status(port, path, auth, want, limit=5):
    """The status of GET path once it is want, polling another process's
    refresh (bounded); returns (status, seconds taken)."""
    t0 = time.monotonic()
    r = request(port, "GET", path, [("Authorization", auth)])
    while r.status != want and time.monotonic() - t0 < limit:
        time.sleep(0.05)
        r = request(port, "GET", path, [("Authorization", auth)])
    return r.status, time.monotonic() - t0


def test_es_key_updated_on_one_instance_gets_its_new_privileges_on_another_within_a_second():
    h = bcrypt_hash(PW)
    with Upstream() as up, Keygate("--upstream", up.url, "--admin-password", h) as a:
        with Keygate("--upstream", up.url, "--admin-password", h, "--data-dir", a.data_dir) as b:
            key = create_key(a.port, "moving")
            auth = "ApiKey " + key["encoded"]
            status, _ = wait_status(b.port, "/data/1", auth, 200)
            check(status == 200, "a key made on A works on B once B refreshed: %d" % status)
            other = {"r": {"applications": [{"application": "keygate", "privileges": ["GET"],
                                             "resources": ["/other/*"]}]}}
            r = es(a.port, "PUT", "/_security/api_key/" + key["id"], {"role_descriptors": other})
            check(r.status == 200 and r.json() == {"updated": True}, "update on A: %d %r" % (r.status, r.body))
            r = request(a.port, "GET", "/data/2", [("Authorization", auth)])
            check(r.status == 403, "A judges by the new descriptors at once: %d %r" % (r.status, r.body))
            status, took = wait_status(b.port, "/data/3", auth, 403)
            check(status == 403 and took < 3, "B refuses the old route: %d after %.1f s" % (status, took))
            status, _ = wait_status(b.port, "/other/1", auth, 200)
            check(status == 200, "B allows the new route: %d" % status)
            # (B let /data/3 through until its refresh: only A's refusal is at once)
            seen = [q[2] for q in up.requests()]
            check("/data/2" not in seen, "the upstream saw a request A refused: %r" % seen)


def test_es_keys_are_checked_after_a_restart_from_the_index_built_at_start():
    h = bcrypt_hash(PW)
    data = tempfile.mkdtemp(prefix="keygate-es-")
    try:
        with Upstream() as up:
            with Keygate("--upstream", up.url, "--admin-password", h, "--data-dir", data) as a:
                live = create_key(a.port, "live")
                gone = create_key(a.port, "gone")
                r = es(a.port, "DELETE", "/_security/api_key", {"ids": [gone["id"]]})
                check(r.status == 200, "invalidate: %r" % r.body)
            with Keygate("--upstream", up.url, "--admin-password", h, "--data-dir", data) as b:
                r = request(b.port, "GET", "/data/live", [("Authorization", "ApiKey " + live["encoded"])])
                check(r.status == 200, "a stored key works after a restart: %d %r" % (r.status, r.body))
                r = request(b.port, "GET", "/data/gone", [("Authorization", "ApiKey " + gone["encoded"])])
                check(r.status == 401 and "api key has been invalidated" in r.body.decode(),
                      "an invalidated stored key stays refused after a restart: %d %r" % (r.status, r.body))
                r = es(b.port, "GET", "/_security/_authenticate", auth="ApiKey " + live["encoded"])
                body = r.json()
                check(r.status == 200 and body["api_key"] == {"id": live["id"], "name": "live"} and
                      body["username"] == "elastic",
                      "_authenticate names the key from its stored document: %d %r" % (r.status, body))
                seen = [q[2] for q in up.requests()]
                check("/data/gone" not in seen, "the upstream saw the invalidated key's request: %r" % seen)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def last_used_of(port, keys):
    """{id: last_used or None} of keys, by one query."""
    q = es(port, "POST", "/_security/_query/api_key", {"query": {"ids": {"values": [k["id"] for k in keys]}},
                                                        "size": len(keys)}).json()
    return {k["id"]: k.get("last_used") for k in q["api_keys"]}


def wait_last_used(port, keys, at_least, limit=8):
    """last_used_of(keys) once every key's is >= at_least, or after limit
    seconds (bounded poll: the writes are batched every 2 s)."""
    deadline = time.monotonic() + limit
    while True:
        seen = last_used_of(port, keys)
        if all((seen.get(k["id"]) or 0) >= at_least for k in keys) or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def test_es_last_used_reaches_every_used_key_among_more_keys_than_the_first_index_holds():
    """The index starts with 1024 buckets and grows; kg__es_last_used_take
    walks only the buckets a use marked since its last call. After a first
    use has been written (so every key's own creation has been replayed
    from the store, which re-puts it), first and repeated uses of keys
    spread over the grown index all reach last_used; a key never used gets
    none."""
    h = bcrypt_hash(PW)
    with Upstream() as up, Keygate("--upstream", up.url, "--admin-password", h) as kg:
        keys = [create_key(kg.port, "k%d" % i) for i in range(1100)]  # the index doubles
        first = keys[0]
        t0 = int(time.time() * 1000)
        r = request(kg.port, "GET", "/data/first", [("Authorization", "ApiKey " + first["encoded"])])
        check(r.status == 200, "first use: %d" % r.status)
        seen = wait_last_used(kg.port, [first], t0)
        check((seen.get(first["id"]) or 0) >= t0, "the first use never reached last_used: %r" % seen)
        used = [first] + [keys[i] for i in (17, 599, 1023, 1024, 1099)]
        t1 = int(time.time() * 1000)
        for k in used:
            r = request(kg.port, "GET", "/data/later", [("Authorization", "ApiKey " + k["encoded"])])
            check(r.status == 200, "use of %s: %d" % (k["name"], r.status))
        seen = wait_last_used(kg.port, used, t1)
        late = [k["name"] for k in used if (seen.get(k["id"]) or 0) < t1]
        check(not late, "no last_used from the later uses for %s within 8 s: %r" % (late, seen))
        unused = last_used_of(kg.port, [keys[500]])
        check(unused.get(keys[500]["id"]) is None, "a key never used got last_used: %r" % unused)
