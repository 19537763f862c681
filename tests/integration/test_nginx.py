"""docs/forward-auth.md's nginx configuration, taken from the page as written,
run with a real nginx in front of a real keygate (forward-auth mode, HTTP
Basic users) and a real upstream, all on 127.0.0.1."""
import base64
import os
import re
import shutil
import subprocess
import time

from harness import (ROOT, Client, Failure, Keygate, Upstream, _pdeathsig, _Proc, _procs, check, free_port, note,
                     request, run_cli)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def doc_config():
    with open(os.path.join(ROOT, "docs", "forward-auth.md")) as f:
        text = f.read()
    m = re.search(r"## nginx\n.*?```nginx\n(.*?)```", text, re.S)
    check(m, "docs/forward-auth.md has no nginx block under '## nginx'")
    return m.group(1)


class Nginx(_Proc):
    """nginx in the foreground as one process (master_process off: no
    workers to orphan), so the harness's safety net kills it like any process
    a test started, even when the test itself dies."""

    def __init__(self, tmp, server_block):
        self.tmp = tmp
        self.port = free_port()
        conf = server_block.replace("listen 8080;", "listen 127.0.0.1:%d;" % self.port)
        check(conf != server_block, "the documented block no longer says 'listen 8080;'")
        temps = " ".join("%s %s;" % (d, tmp) for d in ("client_body_temp_path", "proxy_temp_path",
                                                       "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"))
        self.conf = os.path.join(tmp, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("worker_processes 1;\nerror_log %s/error.log;\npid %s/nginx.pid;\n"
                    "events { worker_connections 64; }\nhttp {\n  access_log off;\n  %s\n%s\n}\n"
                    % (tmp, tmp, temps, conf))

    def __enter__(self):
        self.proc = subprocess.Popen([NGINX, "-p", self.tmp, "-c", self.conf, "-g", "daemon off; master_process off;"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.tmp, "stderr"), "wb"), preexec_fn=_pdeathsig)
        _procs.append(self)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise Failure("nginx exited with %d: %s" % (self.proc.returncode, self.log()))
            try:
                with Client(self.port, timeout=2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise Failure("nginx did not listen within 10 s: %s" % self.log())
                time.sleep(0.05)

    def log(self):
        out = ""
        for name in ("stderr", "error.log"):
            try:
                with open(os.path.join(self.tmp, name), errors="replace") as f:
                    out += f.read()[-800:]
            except OSError:
                pass
        return out

    def __exit__(self, *exc):
        self._kill()


def basic(user, password):
    return ("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode())


def test_the_documented_nginx_auth_request_config_works_with_a_real_nginx():
    if not os.access(NGINX, os.X_OK):
        raise Failure("nginx is not installed: tools/deps.sh --tests installs it")
    r = run_cli("bcrypt", "--cost", "4", "alice-pw")
    check(r.returncode == 0, "keygate bcrypt: %s" % r.stderr)
    with Upstream() as up:
        kg = Keygate("--policy", "bee", "--forward-auth-source", "nginx")
        users = kg.path("users")
        with open(users, "w") as f:
            f.write("alice:%s:creator\n" % r.stdout.strip())
        kg.args += ["--basic-users", users]
        with kg:
            block = doc_config().replace("127.0.0.1:9000", "127.0.0.1:%d" % kg.port)
            block = block.replace("127.0.0.1:1633", up.url.split("//", 1)[1].rstrip("/"))
            tmp = kg.path("nginx")
            os.makedirs(tmp)
            with Nginx(tmp, block) as ng:
                r = request(ng.port, "POST", "/bytes", [basic("alice", "alice-pw")], body=b"through nginx")
                check(r.status == 200, "alice through nginx: %d %r %s" % (r.status, r.body[:200], ng.log()))
                h = {k.lower(): v for k, v in r.json()["headers"]}
                check(h.get("x-keygate-principal") == "alice" and h.get("x-keygate-role") == "creator",
                      "nginx handed keygate's identity to the API: %r" % h)
                check(r.json()["body_len"] == len(b"through nginx"), "the body went through")
                r = request(ng.port, "GET", "/bytes/x")
                check(r.status == 401, "no credential through nginx: %d" % r.status)
                check("Basic" in (r.header("WWW-Authenticate") or ""), "nginx passes keygate's challenge on: %r"
                      % r.header("WWW-Authenticate"))
                r = request(ng.port, "GET", "/bytes/x", [basic("alice", "wrong")])
                check(r.status == 401, "a wrong password through nginx: %d" % r.status)
                r = request(ng.port, "GET", "/stake", [basic("alice", "alice-pw")])
                check(r.status == 403, "a route above alice's role through nginx: %d" % r.status)
                # nginx hands keygate the raw $request_uri and, with proxy_pass
                # without a URI, forwards the raw target: a path whose
                # segments normalisation changes is never a yes
                for target in ("/debug/../bytes/x", "/debug/%2e%2e/bytes/x", "/debug//../bytes/x"):
                    r = request(ng.port, "GET", target)
                    check(r.status == 401, "%s without a credential through nginx: %d" % (target, r.status))
                r = request(ng.port, "GET", "/bytes/../bytes/x", [basic("alice", "alice-pw")])
                check(r.status == 403, "a dot-segment path with a good credential through nginx: %d" % r.status)
                # a client's own X-Forwarded-Uri is not read behind nginx
                r = request(ng.port, "GET", "/bytes/x", [("X-Forwarded-Uri", "/health"),
                                                         ("X-Forwarded-Method", "GET")])
                check(r.status == 401, "a smuggled X-Forwarded-Uri through nginx: %d" % r.status)
                reached = [q[2] for q in up.requests()]
                check(reached == ["/bytes"], "only the allowed request reached the API: %r" % reached)
                note(subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip())
