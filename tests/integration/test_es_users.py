"""Elasticsearch's users and roles over raw HTTP: the native realm
(/_security/user, /_security/role), elastic (the admin password), an ES
config directory's file realm (and SIGHUP), Basic on proxied routes judged by
the application privileges of the user's roles, password changes that take
effect at once despite the credential cache, the throttle, and the users
file beside ES's realms."""
import base64
import json
import os
import re
import signal
import time

from harness import Client, Keygate, Upstream, check, request, timeout, bcrypt_hash
from test_throttle import flood_send, flood_read, check_throttled, hashes, check_hashes, FLOOD, ALICE

PW = "elastic-pw"
APP_GET_DATA = {"applications": [{"application": "keygate", "privileges": ["GET"], "resources": ["/data/*"]}]}
WWW = ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey"]


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


ELASTIC = basic("elastic", PW)


def es_kg(up, *extra, admin_hash=None):
    return Keygate("--upstream", up.url, "--admin-password", admin_hash or bcrypt_hash(PW), *extra)


def es(port, method, path, auth, body=None, headers=()):
    h = list(headers)
    if auth:
        h.append(("Authorization", auth))
    if body is not None:
        h.append(("Content-Type", "application/json"))
        body = json.dumps(body).encode()
    return request(port, method, path, h, body)


def ok(r, what, status=200):
    check(r.status == status, "%s: expected %d, got %d %r" % (what, status, r.status, r.body[:300]))
    check(r.header("X-elastic-product") == "Elasticsearch", "%s: no X-elastic-product header" % what)
    return r.json()


def es_error(r, status, typ, reason, what):
    """ES's error body: {"error":{"root_cause":[{type,reason}],type,reason},"status"}."""
    check(r.status == status, "%s: expected %d, got %d %r" % (what, status, r.status, r.body[:300]))
    j = r.json()
    e = j.get("error", {})
    check(j.get("status") == status and e.get("type") == typ, "%s: type %r status %r, want %s %d"
          % (what, e.get("type"), j.get("status"), typ, status))
    check(e.get("reason") == reason if isinstance(reason, str) else reason.search(e.get("reason", "")),
          "%s: reason %r, want %r" % (what, e.get("reason"), reason))
    check(e.get("root_cause", [{}])[0].get("reason") == e.get("reason"), "%s: root_cause differs" % what)
    if status == 401:
        check(r.header_all("WWW-Authenticate") == WWW, "%s: challenges %r" % (what, r.header_all("WWW-Authenticate")))
    return e


def put_role(port, name, body=APP_GET_DATA):
    return ok(es(port, "PUT", "/_security/role/" + name, ELASTIC, body), "PUT role " + name)


def put_user(port, name, password, roles, **more):
    body = dict(more, password=password, roles=roles)
    return ok(es(port, "PUT", "/_security/user/" + name, ELASTIC, body), "PUT user " + name)


def who(port, auth, headers=()):
    return es(port, "GET", "/_security/_authenticate", auth, headers=headers)


def upstream_paths(up):
    return [q[2] for q in up.requests()]


# ---- the native realm ----

def test_es_native_user_is_created_then_updated_and_authenticates_in_realm_default_native():
    with Upstream() as up, es_kg(up) as kg:
        put_role(kg.port, "reader")
        j = ok(es(kg.port, "PUT", "/_security/user/bob", ELASTIC,
                  {"password": "bob-pw-1", "roles": ["reader"], "full_name": "Bob", "email": "bob@example.org",
                   "metadata": {"team": "a"}}), "create bob")
        check(j == {"created": True}, "create: %r" % j)
        j = ok(es(kg.port, "POST", "/_security/user/bob", ELASTIC, {"roles": ["reader"], "full_name": "Bob B"}),
               "update bob without a password")
        check(j == {"created": False}, "update: %r" % j)
        j = ok(who(kg.port, basic("bob", "bob-pw-1")), "bob authenticates with the password he was created with")
        check(j == {"username": "bob", "roles": ["reader"], "full_name": "Bob B", "email": None, "metadata": {},
                    "enabled": True, "authentication_realm": {"name": "default_native", "type": "native"},
                    "lookup_realm": {"name": "default_native", "type": "native"}, "authentication_type": "realm"},
              "bob's _authenticate (an update replaces every field but the password): %r" % j)
        j = ok(who(kg.port, ELASTIC), "elastic")
        check(j["username"] == "elastic" and j["roles"] == ["superuser"] and
              j["authentication_realm"] == {"name": "reserved", "type": "reserved"}, "elastic: %r" % j)


def test_es_native_user_reaches_the_upstream_only_through_its_roles_application_privileges():
    with Upstream() as up, es_kg(up) as kg:
        put_role(kg.port, "reader")
        put_user(kg.port, "bob", "bob-pw-1", ["reader"])
        r = es(kg.port, "GET", "/data/x", basic("bob", "bob-pw-1"))
        check(r.status == 200, "GET /data/x is granted: %d %r" % (r.status, r.body[:200]))
        h = dict(r.json()["headers"])
        check(h.get("X-Keygate-Principal") == "bob" and "Authorization" not in h, "upstream headers %r" % h)
        for method, path in (("POST", "/data/x"), ("GET", "/other")):
            r = es(kg.port, method, path, basic("bob", "bob-pw-1"))
            es_error(r, 403, "security_exception", "action [%s %s] is unauthorized for user [bob]" % (method, path),
                     "%s %s" % (method, path))
        check(upstream_paths(up) == ["/data/x"], "the upstream saw a refused request: %r" % up.requests())


def test_es_wrong_password_is_401_naming_the_user_with_three_challenges_and_nothing_goes_upstream():
    with Upstream() as up, es_kg(up) as kg:
        put_role(kg.port, "reader")
        put_user(kg.port, "bob", "bob-pw-1", ["reader"])
        es_error(who(kg.port, basic("bob", "wrong")), 401, "security_exception",
                 "unable to authenticate user [bob] for REST request [/_security/_authenticate]", "wrong password")
        es_error(who(kg.port, basic("nobody", "bob-pw-1")), 401, "security_exception",
                 "unable to authenticate user [nobody] for REST request [/_security/_authenticate]", "unknown user")
        r = es(kg.port, "GET", "/data/x", basic("bob", "wrong"))
        check(r.status == 401 and r.header_all("WWW-Authenticate") == WWW, "proxied wrong password: %d %r"
              % (r.status, r.header_all("WWW-Authenticate")))
        es_error(r, 401, "security_exception", "unable to authenticate user [bob] for REST request [/data/x]",
                 "proxied wrong password names the user and the path, as on /_security/")
        es_error(es(kg.port, "GET", "/data/y", basic("nobody", "x")), 401, "security_exception",
                 "unable to authenticate user [nobody] for REST request [/data/y]", "proxied unknown user")
        check(up.requests() == [], "the upstream saw a wrong password: %r" % up.requests())


def test_es_disabled_user_is_refused_even_with_a_cached_password():
    with Upstream() as up, es_kg(up) as kg:
        put_role(kg.port, "reader")
        put_user(kg.port, "bob", "bob-pw-1", ["reader"])
        check(es(kg.port, "GET", "/data/a", basic("bob", "bob-pw-1")).status == 200, "bob enabled")
        ok(es(kg.port, "PUT", "/_security/user/bob", ELASTIC, {"roles": ["reader"], "enabled": False}), "disable")
        es_error(who(kg.port, basic("bob", "bob-pw-1")), 401, "security_exception",
                 "unable to authenticate user [bob] for REST request [/_security/_authenticate]", "disabled bob")
        r = es(kg.port, "GET", "/data/b", basic("bob", "bob-pw-1"))
        check(r.status == 401, "disabled bob upstream: %d %r" % (r.status, r.body[:200]))
        j = ok(es(kg.port, "GET", "/_security/user/bob", ELASTIC), "GET bob")
        check(j["bob"]["enabled"] is False, "GET shows enabled false: %r" % j)
        check(upstream_paths(up) == ["/data/a"], "a disabled user reached the upstream: %r" % up.requests())


def test_es_get_users_lists_elastic_and_native_users_and_404s_unknown_names():
    with Upstream() as up, es_kg(up) as kg:
        put_user(kg.port, "bob", "bob-pw-1", ["reader"])
        put_user(kg.port, "carol", "carol-pw", [], full_name="Carol")
        j = ok(es(kg.port, "GET", "/_security/user", ELASTIC), "GET all")
        check(sorted(j) == ["bob", "carol", "elastic"], "users %r" % sorted(j))
        check(j["elastic"] == {"username": "elastic", "roles": ["superuser"], "full_name": None, "email": None,
                               "metadata": {"_reserved": True}, "enabled": True}, "elastic %r" % j["elastic"])
        check(j["carol"] == {"username": "carol", "roles": [], "full_name": "Carol", "email": None, "metadata": {},
                             "enabled": True}, "carol %r (never a hash)" % j["carol"])
        j = ok(es(kg.port, "GET", "/_security/user/bob,carol,nobody", ELASTIC), "GET a list")
        check(sorted(j) == ["bob", "carol"], "bob,carol,nobody: %r" % sorted(j))
        r = es(kg.port, "GET", "/_security/user/nobody", ELASTIC)
        check(r.status == 404 and r.json() == {}, "unknown user: %d %r" % (r.status, r.body))


def test_es_delete_user_answers_found_then_404_and_the_user_stops_authenticating():
    with Upstream() as up, es_kg(up) as kg:
        put_user(kg.port, "bob", "bob-pw-1", [])
        ok(who(kg.port, basic("bob", "bob-pw-1")), "bob before (now cached)")
        j = ok(es(kg.port, "DELETE", "/_security/user/bob", ELASTIC), "delete")
        check(j == {"found": True}, "delete: %r" % j)
        r = es(kg.port, "DELETE", "/_security/user/bob", ELASTIC)
        check(r.status == 404 and r.json() == {"found": False}, "delete again: %d %r" % (r.status, r.body))
        check(who(kg.port, basic("bob", "bob-pw-1")).status == 401, "a deleted user still authenticates")


def test_es_reserved_user_names_are_refused_with_es_messages():
    with Upstream() as up, es_kg(up) as kg:
        es_error(es(kg.port, "PUT", "/_security/user/elastic", ELASTIC, {"password": "whatever", "roles": []}), 400,
                 "action_request_validation_exception",
                 "Validation Failed: 1: user [elastic] is reserved and only the password can be changed;", "PUT elastic")
        es_error(es(kg.port, "PUT", "/_security/user/kibana_system", ELASTIC, {"password": "whatever", "roles": []}),
                 400, "action_request_validation_exception",
                 "Validation Failed: 1: user [kibana_system] is reserved and only the password can be changed;",
                 "PUT kibana_system")
        es_error(es(kg.port, "DELETE", "/_security/user/elastic", ELASTIC), 400, "illegal_argument_exception",
                 "user [elastic] is reserved and cannot be deleted", "DELETE elastic")
        ok(who(kg.port, ELASTIC), "elastic is unchanged")


def test_es_password_change_stops_the_old_password_at_once_and_the_new_one_works():
    # bug: prepare_user_password copied r->arg onto itself with snprintf, so
    # every POST /_security/user/{name}/_password answered 404 "user []"
    with Upstream() as up, es_kg(up) as kg:
        put_role(kg.port, "reader")
        put_user(kg.port, "bob", "bob-pw-1", ["reader"])
        # cached on both paths: _authenticate and a proxied route
        for _ in range(2):
            ok(who(kg.port, basic("bob", "bob-pw-1")), "bob-pw-1")
            check(es(kg.port, "GET", "/data/1", basic("bob", "bob-pw-1")).status == 200, "bob-pw-1 upstream")
        j = ok(es(kg.port, "POST", "/_security/user/bob/_password", ELASTIC, {"password": "bob-pw-2"}),
               "elastic changes bob's password")
        check(j == {}, "change: %r" % j)
        es_error(who(kg.port, basic("bob", "bob-pw-1")), 401, "security_exception",
                 "unable to authenticate user [bob] for REST request [/_security/_authenticate]",
                 "the old (cached) password after the change")
        check(es(kg.port, "GET", "/data/2", basic("bob", "bob-pw-1")).status == 401,
              "the old cached password still reaches the upstream")
        ok(who(kg.port, basic("bob", "bob-pw-2")), "the new password")
        # bob's own change: no name in the path, no privilege needed
        j = ok(es(kg.port, "PUT", "/_security/user/_password", basic("bob", "bob-pw-2"), {"password": "bob-pw-3"}),
               "bob changes his own password")
        check(es(kg.port, "GET", "/data/3", basic("bob", "bob-pw-2")).status == 401, "bob-pw-2 after bob's change")
        check(es(kg.port, "GET", "/data/4", basic("bob", "bob-pw-3")).status == 200, "bob-pw-3")
        check(upstream_paths(up) == ["/data/1", "/data/1", "/data/4"], "upstream saw %r" % up.requests())
        j = ok(es(kg.port, "GET", "/_security/user/bob", ELASTIC), "GET bob")
        check(j["bob"]["roles"] == ["reader"], "a password change keeps the rest: %r" % j)


def test_es_password_change_for_elastic_is_refused_naming_the_admin_password():
    with Upstream() as up, es_kg(up) as kg:
        want = "the password of [elastic] is keygate's admin password: change admin_password instead"
        for path in ("/_security/user/elastic/_password", "/_security/user/_password"):
            es_error(es(kg.port, "POST", path, ELASTIC, {"password": "new-password"}), 400,
                     "illegal_argument_exception", want, path)
        ok(who(kg.port, ELASTIC), "elastic's password is unchanged")
        # ES's other built-in users are not keygate's admin password
        es_error(es(kg.port, "POST", "/_security/user/kibana_system/_password", ELASTIC, {"password": "new-password"}),
                 400, "illegal_argument_exception",
                 "user [kibana_system] is reserved by Elasticsearch and keygate does not provide it", "kibana_system")


def test_es_user_apis_need_manage_security_and_get_needs_read_security():
    with Upstream() as up, es_kg(up) as kg:
        put_role(kg.port, "reader")
        put_role(kg.port, "auditor", {"cluster": ["read_security"]})
        put_user(kg.port, "bob", "bob-pw-1", ["reader"])
        put_user(kg.port, "aud", "aud-pw-1", ["auditor"])
        granted = lambda action, privs, user, roles: (  # noqa: E731
            "action [cluster:admin/xpack/security/%s] is unauthorized for user [%s] with effective roles [%s], "
            "this action is granted by the cluster privileges [%s]" % (action, user, roles, privs))
        es_error(es(kg.port, "GET", "/_security/user", basic("bob", "bob-pw-1")), 403, "security_exception",
                 granted("user/get", "read_security,manage_security,all", "bob", "reader"), "bob GET users")
        ok(es(kg.port, "GET", "/_security/user", basic("aud", "aud-pw-1")), "read_security may GET users")
        ok(es(kg.port, "GET", "/_security/role", basic("aud", "aud-pw-1")), "read_security may GET roles")
        for who_, pw, roles in (("bob", "bob-pw-1", "reader"), ("aud", "aud-pw-1", "auditor")):
            es_error(es(kg.port, "PUT", "/_security/user/eve", basic(who_, pw), {"password": "eve-pw-1", "roles": []}),
                     403, "security_exception", granted("user/put", "manage_security,all", who_, roles),
                     "%s PUT user" % who_)
            es_error(es(kg.port, "DELETE", "/_security/user/bob", basic(who_, pw)), 403, "security_exception",
                     granted("user/delete", "manage_security,all", who_, roles), "%s DELETE user" % who_)
            es_error(es(kg.port, "PUT", "/_security/role/r", basic(who_, pw), {}), 403, "security_exception",
                     granted("role/put", "manage_security,all", who_, roles), "%s PUT role" % who_)
        es_error(es(kg.port, "POST", "/_security/user/aud/_password", basic("bob", "bob-pw-1"),
                    {"password": "stolen-pw"}), 403, "security_exception",
                 granted("user/change_password", "manage_security,all", "bob", "reader"), "bob changes aud's password")
        ok(who(kg.port, basic("aud", "aud-pw-1")), "aud's password is unchanged")
        r = es(kg.port, "GET", "/_security/user/eve", ELASTIC)
        check(r.status == 404, "a refused PUT created eve: %d" % r.status)


# ---- roles ----

def test_es_roles_are_created_listed_with_superuser_and_deleted():
    with Upstream() as up, es_kg(up) as kg:
        j = ok(es(kg.port, "PUT", "/_security/role/reader", ELASTIC, APP_GET_DATA), "create")
        check(j == {"role": {"created": True}}, "create: %r" % j)
        j = ok(es(kg.port, "POST", "/_security/role/reader", ELASTIC, APP_GET_DATA), "update")
        check(j == {"role": {"created": False}}, "update: %r" % j)
        j = ok(es(kg.port, "GET", "/_security/role", ELASTIC), "GET roles")
        check(sorted(j) == ["reader", "superuser"], "roles %r" % sorted(j))
        check(j["superuser"]["metadata"] == {"_reserved": True} and j["superuser"]["cluster"] == ["all"],
              "superuser %r" % j["superuser"])
        check(j["reader"] == {"cluster": [], "indices": [], "applications": APP_GET_DATA["applications"],
                              "run_as": [], "metadata": {}, "transient_metadata": {"enabled": True}},
              "reader, normalised: %r" % j["reader"])
        j = ok(es(kg.port, "GET", "/_security/role/reader,nope", ELASTIC), "GET a list")
        check(list(j) == ["reader"], "reader,nope: %r" % j)
        r = es(kg.port, "GET", "/_security/role/nope", ELASTIC)
        check(r.status == 404 and r.json() == {}, "unknown role: %d %r" % (r.status, r.body))
        es_error(es(kg.port, "PUT", "/_security/role/superuser", ELASTIC, {}), 400,
                 "action_request_validation_exception",
                 "Validation Failed: 1: Role [superuser] is reserved and may not be used.;", "PUT superuser")
        es_error(es(kg.port, "PUT", "/_security/role/bad", ELASTIC, {"cluster": ["nope"]}), 400,
                 "action_request_validation_exception", re.compile(r"^Validation Failed: 1: unknown cluster "
                                                                   r"privilege \[nope\]"), "unknown privilege")
        es_error(es(kg.port, "DELETE", "/_security/role/superuser", ELASTIC), 400, "illegal_argument_exception",
                 "role [superuser] is reserved and cannot be deleted", "DELETE superuser")
        j = ok(es(kg.port, "DELETE", "/_security/role/reader", ELASTIC), "delete")
        check(j == {"found": True}, "delete %r" % j)
        r = es(kg.port, "DELETE", "/_security/role/reader", ELASTIC)
        check(r.status == 404 and r.json() == {"found": False}, "delete again: %d %r" % (r.status, r.body))


def test_es_user_follows_role_changes_at_once_but_an_api_key_keeps_its_snapshot_until_updated():
    with Upstream() as up, es_kg(up) as kg:
        put_role(kg.port, "reader")
        put_role(kg.port, "keys", {"cluster": ["manage_own_api_key"]})
        put_user(kg.port, "bob", "bob-pw-1", ["reader", "keys"])
        bob = basic("bob", "bob-pw-1")
        key = ok(es(kg.port, "POST", "/_security/api_key", bob, {"name": "k"}), "bob's key")
        kauth = "ApiKey " + key["encoded"]
        check(es(kg.port, "GET", "/data/1", bob).status == 200, "bob before")
        check(es(kg.port, "GET", "/data/2", kauth).status == 200, "key before")
        put_role(kg.port, "reader", {"applications": [{"application": "keygate", "privileges": ["GET"],
                                                       "resources": ["/other/*"]}]})
        check(es(kg.port, "GET", "/data/3", bob).status == 403, "bob follows the role change at once")
        check(es(kg.port, "GET", "/other/4", bob).status == 200, "bob's new grant")
        check(es(kg.port, "GET", "/data/5", kauth).status == 200, "the key keeps its point-in-time snapshot")
        check(es(kg.port, "GET", "/other/6", kauth).status == 403, "the key does not gain the new grant")
        j = ok(es(kg.port, "PUT", "/_security/api_key/" + key["id"], bob, {}), "update the key")
        check(j == {"updated": True}, "update re-snapshots: %r" % j)
        check(es(kg.port, "GET", "/data/7", kauth).status == 403, "the key after its update")
        check(es(kg.port, "GET", "/other/8", kauth).status == 200, "the key's new snapshot")
        check(upstream_paths(up) == ["/data/1", "/data/2", "/other/4", "/data/5", "/other/8"],
              "upstream saw %r" % up.requests())


# ---- a worker keeps a user's view (roles compiled) while no user or role changed ----

def uses(c, auth, path="/data/", n=4):
    for i in range(n):  # the first derives and keeps the view, the others use it
        r = c.request("GET", "%s%d" % (path, i), [("Authorization", auth)])
        check(r.status == 200, "use %d of a good user: %d %r" % (i, r.status, r.body[:200]))


def test_es_user_view_kept_by_the_worker_follows_each_change_on_the_very_next_request():
    with Upstream() as up, es_kg(up) as kg, Client(kg.port) as c:
        put_role(kg.port, "reader")
        put_role(kg.port, "other", {"applications": [{"application": "keygate", "privileges": ["GET"],
                                                      "resources": ["/other/*"]}]})
        bob = basic("bob", "bob-pw-1")
        steps = [
            ("the role loses its grant", lambda: put_role(kg.port, "reader", {"cluster": []}), 403),
            ("the user's roles change", lambda: put_user(kg.port, "bob", "bob-pw-1", ["other"]), 403),
            ("the role is deleted", lambda: ok(es(kg.port, "DELETE", "/_security/role/reader", ELASTIC), "del"), 403),
            ("the user is disabled", lambda: ok(es(kg.port, "PUT", "/_security/user/bob", ELASTIC,
                                                   {"roles": ["reader"], "enabled": False}), "disable"), 401),
            ("the user is deleted", lambda: ok(es(kg.port, "DELETE", "/_security/user/bob", ELASTIC), "del"), 401),
        ]
        for what, change, want in steps:
            put_role(kg.port, "reader")
            put_user(kg.port, "bob", "bob-pw-1", ["reader"])
            uses(c, bob)
            before = len(up.requests())
            change()
            r = c.request("GET", "/data/after", [("Authorization", bob)])
            check(r.status == want, "%s: the next request wants %d, got %d %r" % (what, want, r.status, r.body[:200]))
            check(len(up.requests()) == before, "%s: the upstream received %r" % (what, up.requests()[before:]))
        # and a grant gained shows at once too
        put_role(kg.port, "reader")
        put_user(kg.port, "bob", "bob-pw-1", ["reader"])
        uses(c, bob)
        r = c.request("GET", "/other/1", [("Authorization", bob)])
        check(r.status == 403, "not granted yet: %d" % r.status)
        put_user(kg.port, "bob", "bob-pw-1", ["reader", "other"])
        r = c.request("GET", "/other/2", [("Authorization", bob)])
        check(r.status == 200, "a role added: the next request has its grant, got %d %r" % (r.status, r.body[:200]))


def test_es_user_view_kept_by_a_worker_follows_a_role_change_made_on_another_instance():
    h = bcrypt_hash(PW)
    with Upstream() as up, es_kg(up, admin_hash=h) as a:
        put_role(a.port, "reader")
        put_user(a.port, "bob", "bob-pw-1", ["reader"])
        bob = basic("bob", "bob-pw-1")
        # B starts after: its cache loads bob and his role at start
        with Keygate("--upstream", up.url, "--admin-password", h, "--data-dir", a.data_dir) as b, Client(b.port) as c:
            uses(c, bob)
            put_role(a.port, "reader", {"cluster": []})
            t0 = time.monotonic()
            r = c.request("GET", "/data/x", [("Authorization", bob)])
            while r.status == 200 and time.monotonic() - t0 < 5:  # B's refresh, bounded
                time.sleep(0.05)
                r = c.request("GET", "/data/x", [("Authorization", bob)])
            took = time.monotonic() - t0
            check(r.status == 403, "B must follow the role change made on A: %d %r" % (r.status, r.body[:200]))
            check(took < 3, "B followed only after %.1f s (the cache refreshes every second)" % took)


# ---- the file realm ----

def write_config_dir(kg, users, users_roles, roles_yml):
    d = kg.path("esconf")
    os.makedirs(d, exist_ok=True)
    for name, text in (("users", users), ("users_roles", users_roles), ("roles.yml", roles_yml)):
        tmp = os.path.join(d, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(d, name))
    return d


ROLES_YML = """# as ES writes it
fileread:
  applications:
    - application: keygate
      privileges: [ GET ]
      resources: [ "/data/*" ]
filekeys:
  cluster: [ manage_own_api_key ]
"""


def file_kg(up, users, users_roles, roles_yml=ROLES_YML, *extra):
    kg = es_kg(up, *extra)
    kg.args += ["--es-config-dir", write_config_dir(kg, users, users_roles, roles_yml)]
    return kg


def test_es_file_realm_user_authenticates_with_roles_from_users_roles_and_roles_yml():
    users = "# elasticsearch-users useradd\nfrank:%s\n" % bcrypt_hash("frank-pw")
    with Upstream() as up, file_kg(up, users, "fileread:frank\nfilekeys:frank\n") as kg:
        frank = basic("frank", "frank-pw")
        j = ok(who(kg.port, frank), "frank")
        check(j["username"] == "frank" and j["roles"] == ["fileread", "filekeys"] and
              j["authentication_realm"] == {"name": "default_file", "type": "file"} and
              j["lookup_realm"] == {"name": "default_file", "type": "file"}, "frank: %r" % j)
        check(es(kg.port, "GET", "/data/1", frank).status == 200, "frank GET /data/1 (roles.yml)")
        check(es(kg.port, "POST", "/data/2", frank).status == 403, "frank POST /data/2")
        es_error(who(kg.port, basic("frank", "wrong")), 401, "security_exception",
                 "unable to authenticate user [frank] for REST request [/_security/_authenticate]", "wrong password")
        # a key made by a file user carries its realm
        key = ok(es(kg.port, "POST", "/_security/api_key", frank, {"name": "fk"}), "frank's key")
        j = ok(es(kg.port, "GET", "/_security/api_key?owner=true&id=" + key["id"], frank), "get frank's key")
        k = j["api_keys"][0]
        check(k["username"] == "frank" and k["realm"] == "default_file" and k.get("realm_type", "file") == "file",
              "frank's key: %r" % k)
        check(es(kg.port, "GET", "/data/3", "ApiKey " + key["encoded"]).status == 200, "frank's key upstream")
        check(upstream_paths(up) == ["/data/1", "/data/3"], "upstream saw %r" % up.requests())
        # the native realm may hold a user of the same name (the file realm
        # comes first when authenticating, as in ES); updating it needs no
        # password
        j = ok(es(kg.port, "PUT", "/_security/user/frank", ELASTIC, {"password": "native-pw", "roles": []}),
               "native frank")
        check(j == {"created": True}, "native frank: %r" % j)
        j = ok(es(kg.port, "PUT", "/_security/user/frank", ELASTIC, {"roles": [], "full_name": "F"}),
               "update native frank without a password")
        check(j == {"created": False}, "update native frank: %r" % j)
        check(ok(who(kg.port, frank), "file frank")["authentication_realm"]["name"] == "default_file",
              "the file realm comes first")


@timeout(60)
def test_es_file_realm_is_reread_on_sighup_and_a_broken_reload_keeps_the_old_realm():
    users1 = "frank:%s\n" % bcrypt_hash("frank-pw")
    with Upstream() as up, file_kg(up, users1, "fileread:frank\n") as kg:
        ok(who(kg.port, basic("frank", "frank-pw")), "frank at start")
        check(who(kg.port, basic("gina", "gina-pw")).status == 401, "gina before she is added")
        users2 = "gina:%s\n" % bcrypt_hash("gina-pw")
        write_config_dir(kg, users2, "fileread:gina\n", ROLES_YML)
        mark = kg.log_mark()
        kg.send_signal(signal.SIGHUP)
        kg.wait_for_log("configuration reloaded", since=mark, timeout=20)
        j = ok(who(kg.port, basic("gina", "gina-pw")), "gina after the reload")
        check(j["roles"] == ["fileread"] and j["authentication_realm"]["name"] == "default_file", "gina %r" % j)
        check(who(kg.port, basic("frank", "frank-pw")).status == 401, "frank, removed, still authenticates")
        # a broken users file: the reload fails, gina stays
        write_config_dir(kg, users2 + "henry:{PBKDF2}10000$abc$def\n", "fileread:gina\n", ROLES_YML)
        mark = kg.log_mark()
        kg.send_signal(signal.SIGHUP)
        line = kg.wait_for_log(r"reload failed", since=mark, timeout=20)
        check(re.search(r"users:2:", line), "the reload error names file:line: %r" % line)
        ok(who(kg.port, basic("gina", "gina-pw")), "gina after a failed reload")
        check(kg.alive(), "keygate died on a broken reload")


def test_es_file_realm_broken_at_start_is_a_start_up_error_naming_file_and_line():
    with Upstream() as up:
        kg = file_kg(up, "frank:%s\n" % bcrypt_hash("frank-pw"), "fileread:frank\n",
                     ROLES_YML + "broken: [unclosed\n")
        kg.wait = False
        with kg:
            rc = kg.wait_exit(20)
            err = kg.stderr_text()
        check(rc not in (None, 0), "keygate started with a broken roles.yml (exit %r)" % rc)
        check(re.search(r"roles\.yml:\d+", err), "the error names roles.yml:line: %r" % err[-600:])


# ---- beside other schemes ----

def test_bee_answers_a_basic_credential_the_same_with_the_es_dialect_on():
    from harness import BEE_KEY
    answers = []
    for extra in ((), ("--api-keys=false",)):
        with Upstream() as up, Keygate("--restricted", "--admin-password", bcrypt_hash(PW), "--token-encryption-key",
                                       BEE_KEY, "--upstream", up.url, *extra) as kg:
            got = []
            for path in ("/bytes/x", "/stake"):
                r = es(kg.port, "GET", path, ELASTIC)
                got.append((r.status, r.body, r.header_all("WWW-Authenticate")))
            answers.append(got)
            check(up.requests() == [], "a Basic credential reached Bee's upstream: %r" % up.requests())
    check(answers[0] == answers[1], "Bee's answers differ with the ES dialect on: %r vs %r" % tuple(answers))
    check(all(a[0] == 401 for a in answers[0]), "Bee refuses Basic on its routes: %r" % answers[0])


def test_a_name_no_es_realm_knows_falls_through_to_the_users_file_and_its_policy():
    with Upstream() as up:
        kg = es_kg(up, "--policy", "bee")
        path = kg.path("users")
        with open(path, "w") as f:
            f.write("alice:%s:creator\n" % bcrypt_hash("alice-pw"))
        kg.args += ["--basic-users", path]
        with kg:
            put_role(kg.port, "reader")
            put_user(kg.port, "bob", "bob-pw-1", ["reader"])
            r = es(kg.port, "POST", "/bytes", basic("alice", "alice-pw"))
            check(r.status == 200, "alice (users file, creator) may POST /bytes: %d %r" % (r.status, r.body[:200]))
            h = dict(r.json()["headers"])
            check(h.get("X-Keygate-Scheme") == "basic" and h.get("X-Keygate-Role") == "creator", "alice: %r" % h)
            check(es(kg.port, "GET", "/stake", basic("alice", "alice-pw")).status == 403, "alice GET /stake (policy)")
            check(es(kg.port, "GET", "/bytes", basic("alice", "wrong")).status == 401, "alice wrong password")
            r = es(kg.port, "GET", "/data/1", basic("bob", "bob-pw-1"))
            check(r.status == 200 and dict(r.json()["headers"]).get("X-Keygate-Scheme") == "es-user",
                  "bob (native) through his roles: %d" % r.status)
            check(es(kg.port, "POST", "/bytes", basic("bob", "bob-pw-1")).status == 403,
                  "bob is judged by his roles, not the policy")
            check(who(kg.port, basic("alice", "alice-pw")).status == 401, "a users-file user on /_security")
            check(upstream_paths(up) == ["/bytes", "/data/1"], "upstream saw %r" % up.requests())


# ---- the throttle ----

THROTTLE = ("--throttle-max-failures", "3", "--trusted-proxies", "127.0.0.1")


def test_es_wrong_passwords_are_throttled_with_retry_after_and_an_es_body_on_both_paths():
    # bug: /_security worded its 429 "too many failed authentication attempts",
    # the proxied routes (kg_throttle_message) "too many failed attempts"
    with Upstream() as up, es_kg(up, *THROTTLE) as kg:
        for n, path in enumerate(("/_security/_authenticate", "/data/x")):
            mallory = ("X-Forwarded-For", "203.0.113.%d" % (20 + n))  # one address per path
            for i in range(3):
                r = es(kg.port, "GET", path, basic("elastic", "guess%d" % i), headers=[mallory])
                check(r.status == 401, "%s guess %d: %d" % (path, i, r.status))
            # the next guess is not checked (a password already verified and
            # cached is not a guess, and is not held up)
            r = es(kg.port, "GET", path, basic("elastic", "guess3"), headers=[mallory])
            e = es_error(r, 429, "security_exception", re.compile(r"^too many failed attempts; retry in [1-9][0-9]* "
                                                                  r"seconds$"), path)
            check(re.fullmatch(r"[1-9][0-9]*", r.header("Retry-After") or ""), "%s: Retry-After %r"
                  % (path, r.header("Retry-After")))
            check(e["reason"].endswith("retry in %s seconds" % r.header("Retry-After")), "%s: %r" % (path, e))
            ok(who(kg.port, ELASTIC, headers=[ALICE]), "another address is not throttled")
        check(up.requests() == [], "the upstream saw a guess: %r" % up.requests())


@timeout(120)
def test_es_parallel_wrong_passwords_get_no_more_checks_than_the_throttle_allows():
    with Upstream() as up, es_kg(up, "--throttle-max-failures", "5", "--trusted-proxies", "127.0.0.1",
                                 admin_hash=bcrypt_hash(PW, 12)) as kg:
        for path in ("/_security/_authenticate", "/data/x"):
            mallory = ("X-Forwarded-For", "203.0.113.%d" % (10 + len(path)))
            before = hashes(kg.port)
            clients = flood_send(kg.port, [("GET", path, [("Authorization", basic("elastic", "guess%d" % i)),
                                                          mallory], None) for i in range(FLOOD)])
            answers = flood_read(clients, "GET")
            check_throttled(answers, lambda r: r.status == 401 and r.json()["error"]["type"] == "security_exception",
                            path)
            check_hashes(kg.port, before, path)
        check(up.requests() == [], "the upstream saw a guess: %r" % up.requests())
