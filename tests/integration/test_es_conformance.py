"""Elasticsearch security conformance (issue 14) over raw HTTP: application
privileges (PUT/GET/DELETE /_security/privilege) and their use on keygate's
own application (upstream routes), has_privileges for users and keys,
_privileges, _builtin, the cache APIs, and the items of the reference's
"Facts that Elasticsearch's own REST tests check" that test_es_keys.py and
test_es_keys_privileges.py do not already cover. Known answers come from
/work/shared/reference/elasticsearch-api-keys.md."""
import json
import time

from harness import Upstream, bcrypt_hash, check, request
from test_es_keys import ELASTIC, apikey, basic, create, es, es_error, es_kg, get_keys, ids_of, ok, upstream_paths
from test_es_keys_privileges import denied

NODES = {"_nodes": {"total": 1, "successful": 1, "failed": 0}, "cluster_name": "keygate"}
PRIV_PUT = "cluster:admin/xpack/security/privilege/put"
PRIV_GET = "cluster:admin/xpack/security/privilege/get"
PRIV_DELETE = "cluster:admin/xpack/security/privilege/delete"


def user(kg, name, roles):
    ok(es(kg, "PUT", "/_security/user/" + name, {"password": "pw-of-" + name, "roles": roles}))
    return basic(name, "pw-of-" + name)


def role(kg, name, body):
    ok(es(kg, "PUT", "/_security/role/" + name, body))


def privs(kg, body, auth=ELASTIC):
    return ok(es(kg, "PUT", "/_security/privilege", body, auth))


def doc(app, name, actions, metadata=None):
    return {"application": app, "name": name, "actions": actions, "metadata": metadata or {}}


# ---------------------------------------------------------------- application privileges

def test_privileges_are_put_got_by_application_and_name_and_deleted():
    with Upstream() as up, es_kg(up) as kg:
        j = privs(kg, {"myapp": {"read": {"actions": ["data:read/*", "action:login"], "metadata": {"d": 1}},
                                 "write": {"actions": "data:write/*"}},
                       "other": {"all": {"application": "other", "name": "all", "actions": ["*"]}}})
        check(j == {"myapp": {"read": {"created": True}, "write": {"created": True}},
                    "other": {"all": {"created": True}}}, "first put: %s" % json.dumps(j))
        j = privs(kg, {"myapp": {"read": {"actions": ["data:read/*"]}}})
        check(j == {"myapp": {"read": {"created": False}}}, "second put of read: %s" % json.dumps(j))
        read = doc("myapp", "read", ["data:read/*"])
        write = doc("myapp", "write", ["data:write/*"])
        every = doc("other", "all", ["*"])
        j = ok(es(kg, "GET", "/_security/privilege"))
        check(j == {"myapp": {"read": read, "write": write}, "other": {"all": every}}, "get all: %s" % json.dumps(j))
        j = ok(es(kg, "GET", "/_security/privilege/myapp"))
        check(j == {"myapp": {"read": read, "write": write}}, "get myapp: %s" % json.dumps(j))
        j = ok(es(kg, "GET", "/_security/privilege/my*,other/read,all"))
        check(j == {"myapp": {"read": read}, "other": {"all": every}}, "get patterns and names: %s" % json.dumps(j))
        j = ok(es(kg, "GET", "/_security/privilege/myapp/write"))
        check(j == {"myapp": {"write": write}}, "get one: %s" % json.dumps(j))
        check(ok(es(kg, "GET", "/_security/privilege/nosuchapp"), 404) == {}, "an unknown application is 404 {}")
        check(ok(es(kg, "GET", "/_security/privilege/myapp/nosuch"), 404) == {}, "an unknown name is 404 {}")
        j = ok(es(kg, "DELETE", "/_security/privilege/myapp/read,nosuch"))
        check(j == {"myapp": {"read": {"found": True}, "nosuch": {"found": False}}}, "delete: %s" % json.dumps(j))
        j = ok(es(kg, "DELETE", "/_security/privilege/myapp/read"), 404)
        check(j == {"myapp": {"read": {"found": False}}}, "delete again: %s" % json.dumps(j))
        check(ok(es(kg, "GET", "/_security/privilege/myapp")) == {"myapp": {"write": write}}, "read is gone")


def test_privilege_put_refusals_are_es_validation_failures():
    with Upstream() as up, es_kg(up) as kg:
        es_error(es(kg, "PUT", "/_security/privilege", {"myapp": {"read": {"actions": ["login"]}}}), 400,
                 "action_request_validation_exception",
                 "Validation Failed: 1: action [login] must contain one of [ '/' , '*' , ':' ];")
        es_error(es(kg, "PUT", "/_security/privilege", {"myapp": {"read": {"actions": ["a:b"], "bad": 1}}}), 400,
                 "x_content_parse_exception", "[application-privilege] unknown field [bad]")
        long_name = "n" + "x" * 600
        long_app = "app" + "y" * 600
        es_error(es(kg, "PUT", "/_security/privilege", {"myapp": {"ok": {"actions": ["a:b"]}},
                                                        long_app: {long_name: {"actions": ["a:b"]}}}), 400,
                 "illegal_argument_exception",
                 "application privilege [%s...] of application [%s...]: application and name together may not be "
                 "longer than [1023] bytes" % (long_name[:64], long_app[:64]))
        check(ok(es(kg, "GET", "/_security/privilege")) == {}, "nothing was stored")


def test_privileges_need_manage_security_or_global_application_manage_and_get_read_security():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "appmgr", {"global": {"application": {"manage": {"applications": ["myapp*"]}}}})
        role(kg, "rd", {"cluster": ["read_security"]})
        role(kg, "nothing", {"cluster": ["monitor"]})
        mgr = user(kg, "mgr", ["appmgr"])
        rd = user(kg, "rd", ["rd"])
        nobody = user(kg, "nobody", ["nothing"])
        # global.application.manage: its applications only
        j = privs(kg, {"myapp1": {"read": {"actions": ["a:b"]}}}, mgr)
        check(j == {"myapp1": {"read": {"created": True}}}, "app manager puts its application: %s" % json.dumps(j))
        r = es(kg, "PUT", "/_security/privilege", {"other": {"read": {"actions": ["a:b"]}}}, mgr)
        check(r.status == 403 and r.json()["error"]["type"] == "security_exception" and
              ("action [%s] is unauthorized for user [mgr]" % PRIV_PUT) in r.json()["error"]["reason"],
              "another application is refused: %d %r" % (r.status, r.body[:300]))
        ok(es(kg, "GET", "/_security/privilege/myapp1", auth=mgr))
        check(es(kg, "GET", "/_security/privilege", auth=mgr).status == 403, "asking for all is more than myapp*")
        check(es(kg, "DELETE", "/_security/privilege/other/read", auth=mgr).status == 403, "delete elsewhere: 403")
        ok(es(kg, "POST", "/_security/privilege/myapp1/_clear_cache", auth=mgr))
        # read_security reads, does not write
        check(ok(es(kg, "GET", "/_security/privilege", auth=rd)) == {"myapp1": {"read": doc("myapp1", "read",
                                                                                              ["a:b"])}}, "rd reads")
        for method, target, body in (("PUT", "/_security/privilege", {"myapp1": {"w": {"actions": ["a:c"]}}}),
                                     ("DELETE", "/_security/privilege/myapp1/read", None)):
            r = es(kg, method, target, body, rd)
            check(r.status == 403, "read_security may not %s: %d %r" % (method, r.status, r.body[:200]))
        denied(es(kg, "GET", "/_security/privilege", auth=nobody), PRIV_GET, "nobody", "nothing",
               "read_security,manage_security,all")
        check(ok(es(kg, "GET", "/_security/privilege/myapp1")) != {}, "the refused requests changed nothing")


# ---------------------------------------------------------------- keygate's own application upstream

def test_a_defined_privilege_grants_upstream_routes_and_a_redefinition_applies_at_once():
    with Upstream() as up, es_kg(up) as kg:
        privs(kg, {"keygate": {"read": {"actions": ["GET:*", "HEAD:*"]}}})
        role(kg, "reader", {"cluster": ["manage_own_api_key"],
                            "applications": [{"application": "keygate", "privileges": ["read"],
                                              "resources": ["/data/*"]}]})
        joe = user(kg, "joe", ["reader"])
        key = create(kg, {"name": "k"}, joe)
        for who, auth in (("joe", joe), ("joe's key", apikey(key["encoded"]))):
            r = es(kg, "GET", "/data/one", auth=auth)
            check(r.status == 200, "%s: GET /data/one through read: %d %r" % (who, r.status, r.body[:200]))
            r = es(kg, "POST", "/data/one", {"x": 1}, auth=auth)
            check(r.status == 403, "%s: POST is not read: %d" % (who, r.status))
            r = es(kg, "GET", "/other", auth=auth)
            check(r.status == 403, "%s: /other is outside the role's resources: %d" % (who, r.status))
        check(upstream_paths(up) == ["/data/one", "/data/one"], "only the two GETs went upstream: %r"
              % upstream_paths(up))
        # redefined: read is now POST on /data/* only
        privs(kg, {"keygate": {"read": {"actions": ["POST:/data/*"]}}})
        for who, auth in (("joe", joe), ("joe's key", apikey(key["encoded"]))):
            check(es(kg, "GET", "/data/one", auth=auth).status == 403, "%s: GET refused after the change" % who)
            check(es(kg, "POST", "/data/one", {"x": 1}, auth=auth).status == 200, "%s: POST allowed now" % who)
        ok(es(kg, "DELETE", "/_security/privilege/keygate/read"))
        for who, auth in (("joe", joe), ("joe's key", apikey(key["encoded"]))):
            check(es(kg, "POST", "/data/one", {"x": 1}, auth=auth).status == 403, "%s: deleted read grants nothing"
                  % who)
        check(upstream_paths(up) == ["/data/one"] * 4, "upstream saw exactly the allowed requests: %r"
              % upstream_paths(up))


def test_a_privilege_name_is_no_method_and_an_undefined_one_grants_nothing_upstream():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "r", {"applications": [{"application": "keygate", "privileges": ["get", "read"],
                                         "resources": ["*"]}]})
        joe = user(kg, "joe", ["r"])
        for method in ("GET", "POST", "DELETE"):
            r = es(kg, method, "/data/x", auth=joe)
            check(r.status == 403, "%s with undefined privilege names: %d" % (method, r.status))
        check(upstream_paths(up) == [], "nothing upstream: %r" % upstream_paths(up))


# ---------------------------------------------------------------- has_privileges, _privileges, _builtin

def test_has_privileges_for_a_user_resolves_application_privileges():
    with Upstream() as up, es_kg(up) as kg:
        privs(kg, {"myapp": {"read": {"actions": ["data:read/*"]}, "write": {"actions": ["data:write/*"]}}})
        role(kg, "r", {"cluster": ["monitor"], "indices": [{"names": ["logs-*"], "privileges": ["read"]}],
                       "applications": [{"application": "myapp", "privileges": ["read"], "resources": ["doc/*"]}]})
        joe = user(kg, "joe", ["r"])
        body = {"cluster": ["monitor", "manage_security"],
                "index": [{"names": ["logs-2024"], "privileges": ["read", "write"]}],
                "application": [{"application": "myapp", "privileges": ["read", "write", "data:read/x"],
                                 "resources": ["doc/1", "other"]}]}
        want = {"username": "joe", "has_all_requested": False,
                "cluster": {"monitor": True, "manage_security": False},
                "index": {"logs-2024": {"read": True, "write": False}},
                "application": {"myapp": {"doc/1": {"read": True, "write": False, "data:read/x": True},
                                          "other": {"read": False, "write": False, "data:read/x": False}}}}
        for method, target in (("POST", "/_security/user/_has_privileges"), ("GET", "/_security/user/_has_privileges"),
                               ("POST", "/_security/user/joe/_has_privileges")):
            j = ok(es(kg, method, target, body, joe))
            check(j == want, "%s %s:\n got  %s\n want %s" % (method, target, json.dumps(j), json.dumps(want)))
        j = ok(es(kg, "POST", "/_security/user/_has_privileges", {"cluster": ["monitor"]}, joe))
        check(j == {"username": "joe", "has_all_requested": True, "cluster": {"monitor": True}, "index": {},
                    "application": {}}, "all granted: %s" % json.dumps(j))


def test_has_privileges_of_another_user_is_refused():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "nothing", {"cluster": ["monitor"]})
        joe = user(kg, "joe", ["nothing"])
        r = es(kg, "POST", "/_security/user/elastic/_has_privileges", {"cluster": ["all"]}, joe)
        check(r.status == 403, "joe asking for elastic: %d %r" % (r.status, r.body[:300]))
        es_error(es(kg, "POST", "/_security/user/joe/_has_privileges", {"cluster": ["all"]}), 400,
                 "illegal_argument_exception", "users may only check the privileges of their own account")


def test_has_privileges_for_a_key_is_its_descriptors_within_its_owners_snapshot():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "r", {"cluster": ["monitor", "manage_own_api_key"],
                       "indices": [{"names": ["logs-*", "metrics-*"], "privileges": ["read"]}]})
        joe = user(kg, "joe", ["r"])
        key = create(kg, {"name": "k", "role_descriptors": {"k": {
            "cluster": ["all"], "indices": [{"names": ["logs-*", "other"], "privileges": ["all"]}]}}}, joe)
        body = {"cluster": ["monitor", "manage"],
                "index": [{"names": ["logs-a", "metrics-a", "other"], "privileges": ["read"]}]}
        j = ok(es(kg, "POST", "/_security/user/_has_privileges", body, apikey(key["encoded"])))
        want = {"username": "joe", "has_all_requested": False, "cluster": {"monitor": True, "manage": False},
                "index": {"logs-a": {"read": True}, "metrics-a": {"read": False}, "other": {"read": False}},
                "application": {}}
        check(j == want, "key:\n got  %s\n want %s" % (json.dumps(j), json.dumps(want)))


def test_user_privileges_lists_the_users_roles_and_refuses_a_key_with_descriptors():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "a", {"cluster": ["monitor"], "indices": [{"names": ["logs-*"], "privileges": ["read"]}]})
        role(kg, "b", {"cluster": ["manage_own_api_key", "monitor"],
                       "applications": [{"application": "myapp", "privileges": ["read"], "resources": ["*"]}]})
        joe = user(kg, "joe", ["a", "b"])
        j = ok(es(kg, "GET", "/_security/user/_privileges", auth=joe))
        check(j["cluster"] == ["manage_own_api_key", "monitor"], "cluster sorted and unique: %r" % j["cluster"])
        check(j["indices"] == [{"names": ["logs-*"], "privileges": ["read"], "allow_restricted_indices": False}],
              "indices: %r" % j["indices"])
        check(j["applications"] == [{"application": "myapp", "privileges": ["read"], "resources": ["*"]}],
              "applications: %r" % j["applications"])
        check(j["run_as"] == [] and j["global"] == [], "run_as, global: %r" % j)
        plain = create(kg, {"name": "plain"}, joe)
        check(ok(es(kg, "GET", "/_security/user/_privileges", auth=apikey(plain["encoded"]))) == j,
              "a key without descriptors lists its owner's")
        scoped = create(kg, {"name": "scoped", "role_descriptors": {"x": {"cluster": ["monitor"]}}}, joe)
        es_error(es(kg, "GET", "/_security/user/_privileges", auth=apikey(scoped["encoded"])), 400,
                 "illegal_argument_exception",
                 "Cannot retrieve privileges for API keys with assigned role descriptors. Please use the Get API key "
                 "information API https://ela.st/es-api-get-api-key")


def test_builtin_lists_the_named_privileges_sorted():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "nothing", {"cluster": ["monitor"]})
        joe = user(kg, "joe", ["nothing"])
        j = ok(es(kg, "GET", "/_security/privilege/_builtin"))
        check(list(j) == ["cluster", "index", "remote_cluster"], "fields: %r" % list(j))
        for k in ("cluster", "index"):
            check(j[k] == sorted(j[k]), "%s sorted: %r" % (k, j[k]))
        for name in ("none", "monitor", "manage", "manage_api_key", "manage_own_api_key", "manage_security",
                     "read_security", "all"):
            check(name in j["cluster"], "cluster lists %s" % name)
        for name in ("none", "read", "write", "index", "all"):
            check(name in j["index"], "index lists %s" % name)
        check(es(kg, "GET", "/_security/privilege/_builtin", auth=joe).status == 403, "builtin needs read_security")


# ---------------------------------------------------------------- cache APIs

def test_cache_apis_answer_es_nodes_shape_with_their_privileges():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "mgr", {"cluster": ["manage_api_key"]})
        role(kg, "own", {"cluster": ["manage_own_api_key"]})
        bob = user(kg, "bob", ["mgr"])
        alice = user(kg, "alice", ["own"])
        k = create(kg, {"name": "k"})
        for target in ("/_security/api_key/%s,other/_clear_cache" % k["id"], "/_security/realm/default_native/_clear_cache",
                       "/_security/realm/_all/_clear_cache?usernames=bob,alice", "/_security/role/a,b/_clear_cache",
                       "/_security/privilege/myapp/_clear_cache"):
            check(ok(es(kg, "POST", target)) == NODES, "%s answers ES's nodes shape" % target)
        check(ok(es(kg, "POST", "/_security/api_key/%s/_clear_cache" % k["id"], auth=bob)) == NODES,
              "manage_api_key clears key caches")
        r = es(kg, "POST", "/_security/api_key/%s/_clear_cache" % k["id"], auth=alice)
        check(r.status == 403, "manage_own_api_key may not: %d" % r.status)
        check(es(kg, "POST", "/_security/role/a/_clear_cache", auth=bob).status == 403, "roles need manage_security")
        es_error(es(kg, "POST", "/_security/realm/ldap1/_clear_cache"), 400, "illegal_argument_exception",
                 "could not find active realm [ldap1]")
        check(es(kg, "GET", "/_security/role/a/_clear_cache").status == 405, "GET of a cache API is 405")


def hashes(kg):
    """bcrypt computations so far (/_keygate/health)."""
    return request(kg.port, "GET", "/_keygate/health").json()["password_jobs"]["hashes"]


def test_realm_clear_cache_drops_cached_passwords_so_the_next_request_checks_again():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "r", {"cluster": ["monitor"]})
        joe = user(kg, "joe", ["r"])
        ann = user(kg, "ann", ["r"])
        for auth in (joe, ann):
            ok(es(kg, "GET", "/_security/_authenticate", auth=auth))
        n = hashes(kg)
        for auth in (joe, ann):
            ok(es(kg, "GET", "/_security/_authenticate", auth=auth))
        check(hashes(kg) == n, "cached passwords cost no bcrypt: %d -> %d" % (n, hashes(kg)))
        ok(es(kg, "POST", "/_security/realm/default_native/_clear_cache?usernames=joe"))
        n = hashes(kg)
        ok(es(kg, "GET", "/_security/_authenticate", auth=ann))
        check(hashes(kg) == n, "ann was not named: still cached (%d -> %d)" % (n, hashes(kg)))
        ok(es(kg, "GET", "/_security/_authenticate", auth=joe))
        check(hashes(kg) == n + 1, "joe was dropped: checked again (%d -> %d)" % (n, hashes(kg)))
        ok(es(kg, "POST", "/_security/realm/_all/_clear_cache"))
        n = hashes(kg)
        for auth in (joe, ann):
            ok(es(kg, "GET", "/_security/_authenticate", auth=auth))
        check(hashes(kg) == n + 2, "every password dropped: both checked again (%d -> %d)" % (n, hashes(kg)))


# ---------------------------------------------------------------- the reference's facts not covered elsewhere

def test_realm_names_on_the_wire_filter_get_and_invalidate():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "own", {"cluster": ["manage_own_api_key"]})
        joe = user(kg, "joe", ["own"])
        mine = create(kg, {"name": "elastic-key"})
        his = create(kg, {"name": "joe-key"}, joe)
        keys = {k["id"]: k for k in get_keys(kg)}
        check((keys[mine["id"]]["realm"], keys[mine["id"]]["realm_type"]) == ("reserved", "reserved"),
              "elastic's key realm: %r" % keys[mine["id"]])
        check((keys[his["id"]]["realm"], keys[his["id"]]["realm_type"]) == ("default_native", "native"),
              "joe's key realm: %r" % keys[his["id"]])
        check(ids_of(get_keys(kg, "?realm_name=reserved")) == [mine["id"]], "get by realm reserved")
        check(ids_of(get_keys(kg, "?realm_name=default_native")) == [his["id"]], "get by realm default_native")
        j = ok(es(kg, "DELETE", "/_security/api_key", {"realm_name": "default_native"}))
        check(j["invalidated_api_keys"] == [his["id"]], "invalidate by realm: %r" % j)


def test_the_accepted_privilege_names_make_roles_and_keys():
    with Upstream() as up, es_kg(up) as kg:
        for c in ("none", "monitor", "manage", "manage_api_key", "manage_own_api_key", "manage_security",
                  "read_security", "all"):
            for i in ("none", "read", "write", "index", "all"):
                rd = {"cluster": [c], "indices": [{"names": ["x"], "privileges": [i]}]}
                ok(es(kg, "PUT", "/_security/role/r-%s-%s" % (c, i), rd))
                create(kg, {"name": "k-%s-%s" % (c, i), "role_descriptors": {"r": rd}})


def test_with_limited_by_for_a_manage_own_owner_and_a_manage_api_key_admins_keys():
    with Upstream() as up, es_kg(up) as kg:
        role(kg, "own", {"cluster": ["manage_own_api_key"]})
        role(kg, "mgr", {"cluster": ["manage_api_key"]})
        alice = user(kg, "alice", ["own"])
        bob = user(kg, "bob", ["mgr"])
        ka = create(kg, {"name": "a"}, alice)
        kb = create(kg, {"name": "b"}, bob)
        # the owner with owner=true: limited_by in ES's list-of-one shape
        g = get_keys(kg, "?owner=true&with_limited_by=true", alice)
        check(ids_of(g) == [ka["id"]] and g[0]["limited_by"] == [{"own": {
            "cluster": ["manage_own_api_key"], "indices": [], "applications": [], "run_as": [], "metadata": {},
            "transient_metadata": {"enabled": True}}}], "alice's own with limited_by: %s" % json.dumps(g))
        # alice's key, even for its own id: 403
        r = es(kg, "GET", "/_security/api_key?id=%s&with_limited_by=true" % ka["id"], auth=apikey(ka["encoded"]))
        check(r.status == 403, "manage_own key with_limited_by: %d %r" % (r.status, r.body[:200]))
        # the admin's key may (manage_api_key is not limited to its own)
        g = get_keys(kg, "?id=%s&with_limited_by=true" % ka["id"], apikey(kb["encoded"]))
        check(ids_of(g) == [ka["id"]] and "limited_by" in g[0], "admin key sees alice's key with limited_by")
        # the admin sees both, alice only hers (owner=true), and query filters alice silently
        check(ids_of(get_keys(kg, "", bob)) == sorted([ka["id"], kb["id"]]), "admin lists every key")
        j = ok(es(kg, "POST", "/_security/_query/api_key", {"query": {"match_all": {}}}, alice))
        check([k["id"] for k in j["api_keys"]] == [ka["id"]], "alice's query is filtered: %r" % j)


def test_a_privilege_defined_on_one_instance_applies_on_another_on_the_same_store():
    with Upstream() as up, es_kg(up) as a:
        role(a, "reader", {"applications": [{"application": "keygate", "privileges": ["read"],
                                             "resources": ["/data/*"]}]})
        joe = user(a, "joe", ["reader"])
        with es_kg(up, "--data-dir", a.data_dir) as b:  # started after joe exists: B knows him
            st = es(b, "GET", "/data/0", auth=joe).status
            check(st == 403, "nothing defined yet: %d" % st)
            privs(a, {"keygate": {"read": {"actions": ["GET:*"]}}})

            def poll(want, target):
                deadline = time.monotonic() + 5
                r = es(b, "GET", target, auth=joe)
                while r.status != want and time.monotonic() < deadline:
                    time.sleep(0.05)  # B's change-log refresh, bounded
                    r = es(b, "GET", target, auth=joe)
                return r.status

            st = poll(200, "/data/1")
            check(st == 200, "B applies read once it refreshed: %d" % st)
            check(ok(es(b, "GET", "/_security/privilege/keygate")) ==
                  {"keygate": {"read": doc("keygate", "read", ["GET:*"])}}, "B lists it")
            ok(es(a, "DELETE", "/_security/privilege/keygate/read"))
            st = poll(403, "/data/2")
            check(st == 403, "B stops granting once read is deleted on A: %d" % st)
            # until B refreshed, /data/2 was still granted (within the refresh second)
            check(upstream_paths(up)[0] == "/data/1" and set(upstream_paths(up)) <= {"/data/1", "/data/2"},
                  "the upstream saw only granted requests: %r" % upstream_paths(up))


def test_file_realm_keys_are_in_default_file_for_get_and_invalidate_filters():
    from test_es_users import ELASTIC as ADMIN, file_kg  # its keygate's elastic password
    admin = ("Authorization", ADMIN)
    users = "frank:%s\n" % bcrypt_hash("frank-pw")
    with Upstream() as up, file_kg(up, users, "filekeys:frank\n") as kg:
        frank = basic("frank", "frank-pw")
        fk = create(kg, {"name": "fk"}, frank)
        ek = create(kg, {"name": "ek"}, admin)
        k = get_keys(kg, "?realm_name=default_file", admin)
        check(ids_of(k) == [fk["id"]] and (k[0]["realm"], k[0]["realm_type"]) == ("default_file", "file"),
              "get by realm default_file: %r" % k)
        check(ids_of(get_keys(kg, "?username=frank&realm_name=default_file", frank)) == [fk["id"]],
              "manage_own_api_key naming itself in username and realm_name")
        j = ok(es(kg, "DELETE", "/_security/api_key", {"realm_name": "default_file"}, admin))
        check(j["invalidated_api_keys"] == [fk["id"]], "invalidate by realm default_file: %r" % j)
        check(not get_keys(kg, "?id=" + ek["id"], admin)[0]["invalidated"], "elastic's key untouched")
