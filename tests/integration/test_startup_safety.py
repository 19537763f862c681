"""Start-up and admin-command safety: one keygate per port, admin commands
that never create a store and name the one they changed, data directories
and files other users could read or change, and `token revoke` of a
Bee-format token with the key serve keeps in its store."""
import base64
import json
import os
import re
import socket
import subprocess
import tempfile
import shutil

from harness import Keygate, Upstream, check, free_port, request, run_cli

NOBODY = 65534


def serve_once(*args, cwd=None, timeout=5):
    """Runs `keygate serve ARGS` expecting it to exit on its own (a start-up
    error); a keygate still running after timeout seconds is a failure."""
    try:
        return run_cli("serve", *args, cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        check(False, "keygate serve %s was still running after %d s; it should have refused to start"
              % (" ".join(args), timeout))


def tmpdir():
    return tempfile.mkdtemp(prefix="keygate-safety-")


# ------------------------------------------------------------ one per port

def test_second_keygate_on_a_held_port_exits_nonzero_naming_the_port():
    with Upstream() as up, Keygate("--require-auth=true", "--upstream", up.url) as first:
        d = tmpdir()
        try:
            p = serve_once("--listen", "127.0.0.1:%d" % first.port, "--data-dir", os.path.join(d, "data"),
                           "--require-auth=false", "--upstream", up.url)
            check(p.returncode != 0, "a second keygate on port %d started (exit %d): the kernel would split "
                  "connections between them" % (first.port, p.returncode))
            check(re.search(r"port %d is already in use" % first.port, p.stderr),
                  "the error does not name port %d: %r" % (first.port, p.stderr[-400:]))
            check(not os.path.exists(os.path.join(d, "data")),
                  "the refused keygate made a data directory before checking its port")
        finally:
            shutil.rmtree(d, ignore_errors=True)
        # the first is untouched: every request still meets require_auth
        for i in range(20):
            r = request(first.port, "GET", "/x%d" % i)
            check(r.status == 401, "request %d after the refused start: %d, want 401" % (i, r.status))
        port = first.port
    # once the first has stopped, a new one may take the port
    with Keygate("--require-auth=false", port=port) as second:
        check(request(second.port, "GET", "/_keygate/health").status == 200, "restart on the freed port")


def test_a_port_another_program_listens_on_makes_keygate_fail():
    # with and without SO_REUSEPORT: the first would have let keygate join it
    for reuseport in (False, True):
        s = socket.socket()
        try:
            if reuseport:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(8)
            port = s.getsockname()[1]
            d = tmpdir()
            try:
                p = serve_once("--listen", "127.0.0.1:%d" % port, "--data-dir", os.path.join(d, "data"),
                               "--require-auth=false")
            finally:
                shutil.rmtree(d, ignore_errors=True)
            what = "a listener with SO_REUSEPORT" if reuseport else "a plain listener"
            check(p.returncode != 0, "keygate started on port %d held by %s" % (port, what))
            check(re.search(r"port %d is already in use" % port, p.stderr),
                  "%s: the error does not name port %d: %r" % (what, port, p.stderr[-400:]))
        finally:
            s.close()


# ------------------------------------------------------ admin commands, store

def test_token_revoke_without_a_store_fails_and_creates_nothing():
    d = tmpdir()
    try:
        for args in (("--all",), ("0123456789abcdef0123456789abcdef",)):
            p = run_cli("token", "revoke", *args, cwd=d)
            check(p.returncode != 0, "revoke %s in a directory without a store exited 0: %r"
                  % (args[0], p.stdout))
            want = os.path.join(d, "keygate-data", "keygate.db")
            check(want in p.stderr, "the error does not name %s: %r" % (want, p.stderr))
            check("revoked" not in p.stdout, "it claims a revocation: %r" % p.stdout)
            check(os.listdir(d) == [], "revoke created %r in %s" % (os.listdir(d), d))
        p = run_cli("token", "revoke", "--all", "--data-dir", os.path.join(d, "nowhere"))
        check(p.returncode != 0 and os.path.join(d, "nowhere") in p.stderr and os.listdir(d) == [],
              "revoke --data-dir of a missing dir: %d %r, created %r" % (p.returncode, p.stderr, os.listdir(d)))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_token_revoke_names_the_absolute_path_of_the_store_it_changed():
    with Keygate("--require-auth=false") as kg:
        db = os.path.join(kg.data_dir, "keygate.db")
        # relative to the working directory, as a user would type it
        p = run_cli("token", "revoke", "--all", "--data-dir", "data", cwd=kg.tmp)
        check(p.returncode == 0, "revoke --all of a live store: %d %r" % (p.returncode, p.stderr))
        check("in the store %s" % db in p.stdout, "revoke --all does not name %s: %r" % (db, p.stdout))
        p = run_cli("token", "revoke", "--data-dir", kg.data_dir, "0123456789abcdef0123456789abcdef")
        check(p.returncode == 0 and p.stdout.startswith("revoked 0123456789abcdef0123456789abcdef in the store %s"
                                                         % db), "revoke ID: %d %r %r" % (p.returncode, p.stdout, p.stderr))


def test_serve_logs_the_absolute_path_of_its_store():
    with Keygate("--require-auth=false", "--data-dir", "data") as kg:  # relative to kg.tmp, its cwd
        line = kg.wait_for_log(r"store: sqlite ", 5)
        want = os.path.join(kg.tmp, "data", "keygate.db")
        check(want in line, "start-up log names its store as %r, want %s" % (line, want))


# ------------------------------------------------------ files and permissions

def test_a_data_dir_group_or_others_can_write_is_refused():
    for mode in (0o777, 0o770):
        d = tmpdir()
        try:
            data = os.path.join(d, "data")
            os.mkdir(data)
            os.chmod(data, mode)
            p = serve_once("--listen", "127.0.0.1:%d" % free_port(), "--data-dir", data, "--restricted")
            check(p.returncode != 0, "serve used a data dir of mode %o" % mode)
            check(data in p.stderr and "chmod 700" in p.stderr, "serve's error (mode %o): %r" % (mode, p.stderr))
            check(os.listdir(data) == [], "serve wrote %r into the refused dir" % os.listdir(data))
            p = run_cli("token", "revoke", "--all", "--data-dir", data)
            check(p.returncode != 0 and "chmod 700" in p.stderr, "revoke (mode %o): %d %r"
                  % (mode, p.returncode, p.stderr))
        finally:
            shutil.rmtree(d, ignore_errors=True)


def test_a_data_dir_or_database_another_user_owns_is_refused():
    if os.geteuid() != 0:
        return  # only root can give a directory away; CI runs as root
    d = tmpdir()
    try:
        data = os.path.join(d, "data")
        os.mkdir(data, 0o700)
        os.chown(data, NOBODY, NOBODY)
        p = serve_once("--listen", "127.0.0.1:%d" % free_port(), "--data-dir", data, "--restricted")
        check(p.returncode != 0, "serve used a data dir owned by nobody")
        check(data in p.stderr and "owned by uid %d" % NOBODY in p.stderr and "chown" in p.stderr,
              "serve's error: %r" % p.stderr)
        check(os.listdir(data) == [], "serve wrote %r into nobody's dir" % os.listdir(data))
        p = run_cli("token", "revoke", "--all", "--data-dir", data)
        check(p.returncode != 0 and "owned by uid %d" % NOBODY in p.stderr, "revoke: %d %r" % (p.returncode, p.stderr))

        # a database file given away inside our own directory
        os.chown(data, 0, 0)
        with Keygate("--require-auth=false", "--data-dir", data):
            pass
        db = os.path.join(data, "keygate.db")
        os.chown(db, NOBODY, NOBODY)
        p = serve_once("--listen", "127.0.0.1:%d" % free_port(), "--data-dir", data)
        check(p.returncode != 0 and db in p.stderr and "owned by uid %d" % NOBODY in p.stderr,
              "serve with nobody's database: %d %r" % (p.returncode, p.stderr))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_secret_files_other_users_can_read_draw_a_warning():
    h = run_cli("bcrypt", "--cost", "4", "pw").stdout.strip()
    with Upstream() as up:
        kg = Keygate("--policy", "bee", "--upstream", up.url)
        users, cfg = kg.path("users"), kg.path("keygate.yaml")
        with open(users, "w") as f:
            f.write("alice:%s:consumer\n" % h)
        with open(cfg, "w") as f:
            f.write("token_encryption_key: a-secret-key\n")
        os.chmod(users, 0o644)
        os.chmod(cfg, 0o644)
        kg.args += ["--basic-users", users, "--config", cfg, "--restricted", "--admin-password", h]
        with kg:
            kg.wait_for_log(r"warn.*basic_users file %s can be read by every user.*chmod o-r" % re.escape(users), 5)
            kg.wait_for_log(r"warn.*config file .*%s can be read by every user" % re.escape(cfg), 5)
        kg = Keygate("--policy", "bee", "--upstream", up.url)
        users, cfg = kg.path("users"), kg.path("keygate.yaml")
        with open(users, "w") as f:
            f.write("alice:%s:consumer\n" % h)
        with open(cfg, "w") as f:
            f.write("token_encryption_key: a-secret-key\n")
        os.chmod(users, 0o600)
        os.chmod(cfg, 0o640)
        kg.args += ["--basic-users", users, "--config", cfg, "--restricted", "--admin-password", h]
        with kg:
            kg.wait_for_log(r"listening on", 5)
            check("can be read by every user" not in kg.stderr_text(),
                  "a warning about files only the owner (and group) can read: %r" % kg.stderr_text()[-600:])


# --------------------------------------------------- revoke a Bee-format token

def test_revoke_of_a_bee_format_token_uses_the_key_in_the_store():
    h = run_cli("bcrypt", "--cost", "4", "test").stdout.strip()
    d = tmpdir()
    try:
        data = os.path.join(d, "data")
        args = ("--restricted", "--admin-password", h, "--token-format", "bee", "--data-dir", data)
        with Upstream() as up:
            with Keygate("--upstream", up.url, *args) as kg:  # no --token-encryption-key: one is generated
                r = request(kg.port, "POST", "/auth", body=json.dumps({"role": "consumer", "expiry": 3600}).encode(),
                            headers=[("Authorization", "Basic " + base64.b64encode(b"x:test").decode()),
                                     ("Content-Type", "application/json")])
                check(r.status == 201, "/auth: %d %r" % (r.status, r.body[:200]))
                tok = r.json()["key"]
                check(not tok.startswith("kg1."), "not a Bee-format token: %r" % tok)
                r = request(kg.port, "GET", "/bytes/x", headers=[("Authorization", "Bearer " + tok)])
                check(r.status == 200, "the fresh token: %d" % r.status)
            p = run_cli("token", "revoke", "--data-dir", data, tok)
            check(p.returncode == 0 and p.stdout.startswith("revoked "),
                  "revoke of a Bee-format token with the stored key: %d %r %r" % (p.returncode, p.stdout, p.stderr))
            with Keygate("--upstream", up.url, *args) as kg:
                r = request(kg.port, "GET", "/bytes/x", headers=[("Authorization", "Bearer " + tok)])
                check(r.status == 401 and r.json().get("message") == "Token revoked",
                      "the revoked token after a restart: %d %r" % (r.status, r.body[:200]))
    finally:
        shutil.rmtree(d, ignore_errors=True)
