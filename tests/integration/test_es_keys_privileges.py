"""Who may use Elasticsearch's API key APIs (issue 13): native users and
roles made over /_security, each cluster privilege (manage_own_api_key,
manage_api_key, manage_security, read_security, none) against create, get,
invalidate, update and query, keys derived from each user, and the exact
403 texts (lib/es_role.c's kg_es_unauthorized_message)."""
import json

from harness import Upstream, check, request
from test_es_keys import (GET_DATA, apikey, basic, create, descriptor, es, es_error, es_kg, get_keys, ids_of,
                          ok)

CREATE = "cluster:admin/xpack/security/api_key/create"
GET = "cluster:admin/xpack/security/api_key/get"
INVALIDATE = "cluster:admin/xpack/security/api_key/invalidate"
QUERY = "cluster:admin/xpack/security/api_key/query"
BY_CREATE = "manage_own_api_key,manage_api_key,manage_security,all"
BY_READ = "read_security,manage_api_key,manage_security,all"
BY_MANAGE = "manage_api_key,manage_security,all"

ROLES = {
    "own": {"cluster": ["manage_own_api_key"], "applications": [GET_DATA]},
    "mgr": {"cluster": ["manage_api_key"]},
    "sec": {"cluster": ["manage_security"]},
    "rd": {"cluster": ["read_security"]},
    "nothing": {"cluster": ["none"]},
}
# user -> role
USERS = {"alice": "own", "amy": "own", "bob": "mgr", "sam": "sec", "carol": "rd", "dave": "nothing"}


def pw(user):
    return "pw-of-" + user


def auth(user):
    return basic(user, pw(user))


def setup(kg):
    for name, body in ROLES.items():
        ok(es(kg, "PUT", "/_security/role/" + name, body))
    for user, role in USERS.items():
        ok(es(kg, "PUT", "/_security/user/" + user, {"password": pw(user), "roles": [role]}))


def denied(r, action, user, roles, by, key_id=None):
    who = "API key id [%s] of user [%s]" % (key_id, user) if key_id else \
        "user [%s] with effective roles [%s]" % (user, roles)
    es_error(r, 403, "security_exception",
             "action [%s] is unauthorized for %s, this action is granted by the cluster privileges [%s]"
             % (action, who, by))


def test_create_is_allowed_by_the_managing_privileges_and_refused_otherwise():
    with Upstream() as up, es_kg(up) as kg:
        setup(kg)
        made = {}
        for user in ("alice", "bob", "sam"):
            made[user] = create(kg, {"name": user + "-key"}, auth(user))
        for user in ("carol", "dave"):
            denied(es(kg, "POST", "/_security/api_key", {"name": "x"}, auth(user)), CREATE, user, USERS[user],
                   BY_CREATE)
        ok(es(kg, "PUT", "/_security/user/nobody", {"password": pw("nobody"), "roles": []}))
        es_error(es(kg, "POST", "/_security/api_key", {"name": "x"}, auth("nobody")), 403, "security_exception",
                 "action [%s] is unauthorized for user [nobody] with no roles, this action is granted by the cluster "
                 "privileges [%s]" % (CREATE, BY_CREATE))
        keys = get_keys(kg)
        check(sorted((k["username"], k["realm"], k["realm_type"]) for k in keys) ==
              [(u, "default_native", "native") for u in ("alice", "bob", "sam")], "owners: %r" % keys)
        # each key is limited by its owner's roles at creation
        for user, k in made.items():
            g = get_keys(kg, "?id=%s&with_limited_by=true" % k["id"])[0]
            role = USERS[user]
            want = [{role: descriptor(ROLES[role]["cluster"], [], ROLES[role].get("applications", []))}]
            check(g["limited_by"] == want, "%s's key limited_by %s, want %s" % (user, json.dumps(g["limited_by"]),
                                                                                json.dumps(want)))


def test_read_security_may_get_and_query_every_key_but_not_invalidate():
    with Upstream() as up, es_kg(up) as kg:
        setup(kg)
        a = create(kg, {"name": "a"}, auth("alice"))
        b = create(kg, {"name": "b"}, auth("bob"))
        check(ids_of(get_keys(kg, auth=auth("carol"))) == ids_of([a, b]), "read_security gets all keys")
        j = ok(es(kg, "POST", "/_security/_query/api_key", {}, auth("carol")))
        check(j["total"] == 2, "read_security queries all keys: %r" % j)
        denied(es(kg, "DELETE", "/_security/api_key", {"ids": [a["id"]]}, auth("carol")), INVALIDATE, "carol", "rd",
               BY_MANAGE)
        denied(es(kg, "GET", "/_security/api_key", auth=auth("dave")), GET, "dave", "nothing", BY_READ)
        denied(es(kg, "POST", "/_security/_query/api_key", {}, auth("dave")), QUERY, "dave", "nothing", BY_READ)
        check(get_keys(kg, "?active_only=true") != [] and len(get_keys(kg, "?active_only=true")) == 2,
              "a refused invalidation invalidated")


def test_manage_own_api_key_gets_and_invalidates_only_when_the_request_names_its_own_keys():
    with Upstream() as up, es_kg(up) as kg:
        setup(kg)
        a1 = create(kg, {"name": "a1"}, auth("alice"))
        a2 = create(kg, {"name": "a2"}, auth("alice"))
        m = create(kg, {"name": "m"}, auth("amy"))
        b = create(kg, {"name": "b"}, auth("bob"))
        A = auth("alice")
        # refused (not filtered) unless the request says whose keys
        for q in ("", "?id=" + a1["id"], "?name=a1", "?username=alice", "?realm_name=default_native",
                  "?username=amy&realm_name=default_native", "?username=alice&realm_name=reserved"):
            denied(es(kg, "GET", "/_security/api_key" + q, auth=A), GET, "alice", "own", BY_READ)
        check(ids_of(get_keys(kg, "?owner=true", A)) == ids_of([a1, a2]), "owner=true: own keys only")
        check(ids_of(get_keys(kg, "?username=alice&realm_name=default_native", A)) == ids_of([a1, a2]),
              "own username and realm")
        check(ids_of(get_keys(kg, "?owner=true&name=a2", A)) == [a2["id"]], "owner=true with a name")
        check(get_keys(kg, "?owner=true&id=" + b["id"], A, status=404) == [], "owner=true never shows bob's key")
        # a key of alice's (its owner's snapshot: manage_own_api_key) may ask for its own id
        ka = apikey(a1["encoded"])
        check(ids_of(get_keys(kg, "?id=" + a1["id"], ka)) == [a1["id"]], "a key gets its own id")
        # an API key owns no other key: owner=true or its owner's name and realm are refused to it
        for q in ("?id=" + a2["id"], "?owner=true", "?username=alice&realm_name=default_native"):
            denied(es(kg, "GET", "/_security/api_key" + q, auth=ka), GET, "alice", None, BY_READ, key_id=a1["id"])
        denied(es(kg, "DELETE", "/_security/api_key", {"owner": True}, ka), INVALIDATE, "alice", None, BY_MANAGE,
               key_id=a1["id"])
        # invalidate: the same rule; the 403 names manage_api_key,manage_security,all
        for body in ({"ids": [m["id"]]}, {"ids": [a1["id"]]}, {"name": "a1"}, {"username": "alice"}):
            denied(es(kg, "DELETE", "/_security/api_key", body, A), INVALIDATE, "alice", "own", BY_MANAGE)
        j = ok(es(kg, "DELETE", "/_security/api_key", {"owner": True, "ids": [m["id"], a2["id"]]}, A))
        check(j == {"invalidated_api_keys": [a2["id"]], "previously_invalidated_api_keys": [], "error_count": 0},
              "owner=true invalidates only alice's of the ids: %r" % j)
        j = ok(es(kg, "DELETE", "/_security/api_key", {"ids": [a1["id"]]}, ka))
        check(j["invalidated_api_keys"] == [a1["id"]], "a key invalidates itself by its id: %r" % j)
        check(ids_of(get_keys(kg, "?active_only=true")) == ids_of([m, b]), "amy's and bob's keys untouched")


def test_manage_own_api_key_queries_are_silently_filtered_and_limited_by_is_refused_to_its_keys():
    with Upstream() as up, es_kg(up) as kg:
        setup(kg)
        a = create(kg, {"name": "a"}, auth("alice"))
        a2 = create(kg, {"name": "a2"}, auth("alice"))
        create(kg, {"name": "b"}, auth("bob"))
        create(kg, {"name": "m"}, auth("amy"))
        j = ok(es(kg, "POST", "/_security/_query/api_key", {"query": {"match_all": {}}, "sort": ["name"]},
                  auth("alice")))
        check(j["total"] == 2 and [k["id"] for k in j["api_keys"]] == [a["id"], a2["id"]], "alice's query: %r" % j)
        j = ok(es(kg, "POST", "/_security/_query/api_key", {"query": {"term": {"username": "bob"}}}, auth("alice")))
        check(j == {"total": 0, "count": 0, "api_keys": []}, "bob's keys are invisible to alice: %r" % j)
        ka = apikey(a["encoded"])
        # an API key's query sees the key itself only, as ES filters it by the key's id
        j = ok(es(kg, "POST", "/_security/_query/api_key", {}, ka))
        check(j["total"] == 1 and [k["id"] for k in j["api_keys"]] == [a["id"]], "alice's key's query: %r" % j)
        # with_limited_by: refused to a key whose owner has only manage_own_api_key, even for its own id
        denied(es(kg, "GET", "/_security/api_key?id=%s&with_limited_by=true" % a["id"], auth=ka), GET, "alice", None,
               BY_READ, key_id=a["id"])
        denied(es(kg, "POST", "/_security/_query/api_key?with_limited_by=true", {}, ka), QUERY, "alice", None,
               BY_READ, key_id=a["id"])
        g = get_keys(kg, "?owner=true&with_limited_by=true", auth("alice"))
        check(len(g) == 2 and all(list(k["limited_by"][0]) == ["own"] for k in g), "the owner may: %r" % g)
        j = ok(es(kg, "POST", "/_security/_query/api_key?with_limited_by=true", {}, auth("alice")))
        check(list(j["api_keys"][0]["limited_by"][0]) == ["own"], "the owner's query with limited_by: %r" % j)


def test_a_manage_api_key_admin_beside_a_manage_own_user():
    with Upstream() as up, es_kg(up) as kg:
        setup(kg)
        a = create(kg, {"name": "a"}, auth("alice"))
        b = create(kg, {"name": "b"}, auth("bob"))
        B = auth("bob")
        check(ids_of(get_keys(kg, auth=B)) == ids_of([a, b]), "bob sees every key")
        check(ids_of(get_keys(kg, "?owner=true", B)) == [b["id"]], "bob's own")
        check(ids_of(get_keys(kg, "?username=alice", B)) == [a["id"]], "bob by username")
        # only the owner updates a key, whatever the privilege
        es_error(es(kg, "PUT", "/_security/api_key/" + a["id"], {}, B), 404, "resource_not_found_exception",
                 "no API key owned by requesting user found for ID [%s]" % a["id"])
        es_error(es(kg, "PUT", "/_security/api_key/" + b["id"], {}, auth("alice")), 404,
                 "resource_not_found_exception", "no API key owned by requesting user found for ID [%s]" % b["id"])
        check(ok(es(kg, "PUT", "/_security/api_key/" + a["id"], {"metadata": {"x": 1}}, auth("alice"))) ==
              {"updated": True}, "alice updates her key")
        # bob invalidates alice's key; it stops at once upstream
        r = request(kg.port, "GET", "/data/1", [apikey(a["encoded"])])
        check(r.status == 200, "alice's key (snapshot of role own) reaches /data: %d %r" % (r.status, r.body[:200]))
        j = ok(es(kg, "DELETE", "/_security/api_key", {"username": "alice"}, B))
        check(j["invalidated_api_keys"] == [a["id"]], "bob invalidates alice's key: %r" % j)
        r = request(kg.port, "GET", "/data/2", [apikey(a["encoded"])])
        check(r.status == 401, "the invalidated key still works: %d" % r.status)
        check([t for _, _, t in up.requests()] == ["/data/1"], "upstream saw %r" % up.requests())


def test_update_re_snapshots_the_owners_roles():
    with Upstream() as up, es_kg(up) as kg:
        setup(kg)
        a = create(kg, {"name": "a"}, auth("alice"))
        r = request(kg.port, "POST", "/data/1", [apikey(a["encoded"])], body=b"x")
        es_error(r, 403, "security_exception", "action [POST /data/1] is unauthorized for API key id [%s] of user "
                 "[alice]" % a["id"], product=False)
        wider = dict(ROLES["own"], applications=[{"application": "keygate", "privileges": ["*"],
                                                  "resources": ["/data/*"]}])
        ok(es(kg, "PUT", "/_security/role/own", wider))
        r = request(kg.port, "POST", "/data/2", [apikey(a["encoded"])], body=b"x")
        check(r.status == 403, "the key keeps its snapshot until updated: %d" % r.status)
        upd = lambda: ok(es(kg, "PUT", "/_security/api_key/" + a["id"], {}, auth("alice")))  # noqa: E731
        check(upd() == {"updated": True}, "an empty update takes the new snapshot")
        check(upd() == {"updated": False}, "the next empty update is a noop")
        g = get_keys(kg, "?owner=true&with_limited_by=true", auth("alice"))[0]
        check(g["limited_by"][0]["own"]["applications"] == wider["applications"], "limited_by %r" % g["limited_by"])
        r = request(kg.port, "POST", "/data/3", [apikey(a["encoded"])], body=b"x")
        check(r.status == 200, "after the update the key may POST: %d %r" % (r.status, r.body[:200]))
        j = ok(es(kg, "POST", "/_security/api_key/_bulk_update", {"ids": [a["id"]]}, auth("alice")))
        check(j == {"updated": [], "noops": [a["id"]]}, "bulk noop: %r" % j)
        check([t for _, _, t in up.requests()] == ["/data/3"], "upstream saw %r" % up.requests())


def test_authenticate_answers_for_a_native_user_and_its_key():
    with Upstream() as up, es_kg(up) as kg:
        setup(kg)
        j = ok(es(kg, "GET", "/_security/_authenticate", auth=auth("carol")))
        want = {"username": "carol", "roles": ["rd"], "full_name": None, "email": None, "metadata": {},
                "enabled": True, "authentication_realm": {"name": "default_native", "type": "native"},
                "lookup_realm": {"name": "default_native", "type": "native"}, "authentication_type": "realm"}
        check(j == want, "carol: %s\n want %s" % (json.dumps(j), json.dumps(want)))
        k = create(kg, {"name": "ak"}, auth("alice"))
        j = ok(es(kg, "GET", "/_security/_authenticate", auth=apikey(k["encoded"])))
        check(j["username"] == "alice" and j["roles"] == [] and j["authentication_type"] == "api_key" and
              j["api_key"] == {"id": k["id"], "name": "ak"}, "alice's key: %r" % j)
