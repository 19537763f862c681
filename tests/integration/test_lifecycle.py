"""Process lifecycle and operation: SIGHUP reload, graceful SIGTERM, config
errors with file:line, CLI, access log, config precedence."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import (Client, ConnClosed, Failure, Keygate, Upstream, check, free_port,
                     has_ipv6_loopback, request, run_cli, skip, timeout)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # readers never see a half-written file


def headers(n_total):
    return [("X-H-%d" % i, "v") for i in range(n_total - 1)]


# ---------------------------------------------------------------- signals

def test_sighup_reload_applies_new_config_and_keeps_old_on_error():
    with Upstream() as up:
        kg = Keygate()
        cfg = kg.path("keygate.yaml")
        write(cfg, "require_auth: false\nupstream: %s\n" % up.url)
        kg.args += ["--config", cfg]
        with kg, Client(kg.port) as early:
            r = early.request("GET", "/before")
            check(r.status == 200, "before reload (require_auth: false): %d" % r.status)

            write(cfg, "require_auth: true\nupstream: %s\n" % up.url)
            mark = kg.log_mark()
            kg.send_signal(signal.SIGHUP)
            kg.wait_for_log(r"reloaded", 5, since=mark)
            r = request(kg.port, "GET", "/after")
            check(r.status == 401, "after reload to require_auth: true: %d, want 401" % r.status)
            try:
                r = early.request("GET", "/early-conn")
            except (ConnClosed, OSError) as e:
                raise Failure("keep-alive connection opened before SIGHUP broke: %s" % e)
            check(r.status in (200, 401), "keep-alive connection after SIGHUP: %d" % r.status)

            write(cfg, "require_auth: false\nupstream: %s\nno_such_setting: 1\n" % up.url)
            mark = kg.log_mark()
            kg.send_signal(signal.SIGHUP)
            kg.wait_for_log(r"reload failed", 5, since=mark)
            check(kg.alive(), "keygate exited after a bad reload")
            r = request(kg.port, "GET", "/after-bad")
            check(r.status == 401, "after a failed reload: %d, want 401 (previous config kept)" % r.status)
            check(request(kg.port, "GET", "/_keygate/health").status == 200, "health after failed reload")


@timeout(30)
def test_sigterm_finishes_in_flight_request_and_exits_0():
    with Upstream() as up, Keygate("--require-auth=false", "--upstream", up.url) as kg:
        result = {}

        def slow():
            try:
                result["resp"] = request(kg.port, "GET", "/slow?ms=1500", timeout=10)
            except Exception as e:
                result["err"] = "%s: %s" % (type(e).__name__, e)

        t = threading.Thread(target=slow, daemon=True)
        t.start()
        check(up.wait_request(lambda m, p: p.startswith("/slow"), 5), "slow request never reached upstream")
        t0 = time.monotonic()
        kg.send_signal(signal.SIGTERM)

        # new connections are refused or closed once keygate has seen SIGTERM
        refused = None
        while time.monotonic() - t0 < 1.2 and refused is None:
            try:
                with Client(kg.port, timeout=2) as c:
                    r = c.request("GET", "/_keygate/health", [("Connection", "close")])
                    if r.status != 200:
                        refused = "answered %d" % r.status
            except (ConnectionRefusedError, ConnectionResetError, ConnClosed, BrokenPipeError) as e:
                refused = type(e).__name__
            except socket.timeout:
                refused = "timeout"
            if refused is None:
                time.sleep(0.05)

        t.join(10)
        check("err" not in result, "in-flight request failed after SIGTERM: %s" % result.get("err"))
        check("resp" in result, "in-flight request did not finish")
        r = result["resp"]
        check(r.status == 200 and r.json().get("path") == "/slow?ms=1500",
              "in-flight request after SIGTERM: %d %r" % (r.status, r.body[:200]))
        rc = kg.wait_exit(max(0.1, 10 - (time.monotonic() - t0)))
        check(rc is not None, "keygate still running 10 s after SIGTERM")
        check(rc == 0, "keygate exited with %d after SIGTERM, want 0" % rc)
        check(refused is not None, "new connections were still served 1.2 s after SIGTERM")


def test_sigterm_when_idle_exits_0_promptly():
    with Keygate() as kg, Client(kg.port) as idle:
        check(idle.request("GET", "/_keygate/health").status == 200, "health")
        t0 = time.monotonic()
        rc = kg.stop(signal.SIGTERM, 10)
        took = time.monotonic() - t0
        check(rc == 0, "exit code %r after SIGTERM with an idle keep-alive connection, want 0" % rc)
        check(took < 3, "took %.1f s to exit with only an idle keep-alive connection" % took)


def test_listen_is_repeatable_and_takes_ipv6():
    if not has_ipv6_loopback():
        skip("no IPv6 loopback on this machine")
    port6 = free_port(socket.AF_INET6)
    with Keygate("--listen", "[::1]:%d" % port6) as kg:
        with Client(port6, host="::1") as c:
            r = c.request("GET", "/_keygate/health")
            check(r.status == 200, "health over [::1]:%d: %d" % (port6, r.status))
        check(request(kg.port, "GET", "/_keygate/health").status == 200, "health over 127.0.0.1")


# ---------------------------------------------------------------- config & CLI

BAD_CONFIG = """\
require_auth: false
no_such_setting: 1
limits:
  header_timeout: soon
  max_headers: -5
"""


def test_config_check_reports_every_error_with_file_line():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bad.yaml")
        write(path, BAD_CONFIG)
        p = run_cli("config", "check", path)
        check(p.returncode != 0, "config check of a bad file exited 0")
        err = p.stderr
        for line, key in ((2, r"no_such_setting"), (4, r"(limits\.)?header_timeout"),
                          (5, r"(limits\.)?max_headers")):
            rx = r"%s:%d: %s: \S" % (re.escape(path), line, key)
            check(re.search(rx, err), "config check stderr lacks %r; got: %r" % (rx, err[-600:]))


def test_config_check_valid_file_exits_0():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "good.yaml")
        write(path, "require_auth: false\nupstream: http://127.0.0.1:1633\nlimits:\n"
                    "  header_timeout: 5s\n  max_headers: 50\nlimits.idle_timeout: 30s\n")
        p = run_cli("config", "check", path)
        check(p.returncode == 0, "config check of a valid file exited %d: %r" % (p.returncode, p.stderr[-500:]))


def test_serve_with_bad_config_exits_nonzero_with_file_line():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bad.yaml")
        write(path, BAD_CONFIG)
        try:
            p = run_cli("serve", "--listen", "127.0.0.1:%d" % free_port(), "--data-dir",
                        os.path.join(d, "data"), "--config", path, timeout=5)
        except subprocess.TimeoutExpired:
            raise Failure("serve --config with a bad file was still running after 5 s")
        check(p.returncode != 0, "serve with a bad config exited 0")
        rx = r"%s:2: no_such_setting: \S" % re.escape(path)
        check(re.search(rx, p.stderr), "serve stderr lacks %r; got %r" % (rx, p.stderr[-600:]))


def test_help_lists_flags():
    p = run_cli("--help")
    check(p.returncode == 0, "--help exited %d" % p.returncode)
    out = p.stdout + p.stderr
    for flag in ("--upstream", "--limits-max-header-bytes"):
        check(flag in out, "--help does not mention %s" % flag)


def test_version_prints_version():
    p = run_cli("version")
    check(p.returncode == 0, "version exited %d" % p.returncode)
    out = (p.stdout + p.stderr).strip()
    check(re.search(r"\d+\.\d+", out), "version printed %r" % out)
    with Keygate() as kg:
        v = request(kg.port, "GET", "/_keygate/health").json().get("version")
    check(isinstance(v, str) and v in out, "health version %r not in `keygate version` output %r" % (v, out))


# ---------------------------------------------------------------- access log

def wait_access(path, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        hits = [l for l in lines if pred(l)]
        if hits or time.monotonic() > deadline:
            return lines, hits
        time.sleep(0.02)


def test_access_log_has_one_line_per_request():
    with Upstream() as up:
        kg = Keygate("--require-auth=false", "--upstream", up.url)
        log = kg.path("access.log")
        kg.args += ["--log-access", log]
        with kg:
            reqs = [("GET", "/log-alpha?q=1", 200), ("POST", "/log-beta", 200),
                    ("DELETE", "/status/404", 404), ("GET", "/_keygate/nothing-here", 404)]
            for m, t, st in reqs:
                r = request(kg.port, m, t, body=b"x" if m == "POST" else None)
                check(r.status == st, "%s %s: %d" % (m, t, r.status))
            for m, t, st in reqs:
                path = t.split("?")[0]
                lines, hits = wait_access(log, lambda l: path in l and m in l)
                check(hits, "no access-log line for %s %s; log: %r" % (m, path, lines[-5:]))
                check(len(hits) == 1, "%d access-log lines for %s %s" % (len(hits), m, path))
                rest = hits[0].replace(path, " ")  # /status/404 contains the status itself
                check(re.search(r"\b%d\b" % st, rest), "status %d missing from %r" % (st, hits[0]))
                check("127.0.0.1" in hits[0], "client address missing from %r" % hits[0])


def test_each_request_on_a_kept_alive_connection_is_forwarded_and_logged_alone():
    """A kept-alive connection's requests share its buffers: each one reaches
    the upstream with its own headers only, and its access-log line has its
    own status and byte count, not the sum of the ones before."""
    with Upstream() as up:
        kg = Keygate("--require-auth=false", "--upstream", up.url)
        log = kg.path("access.log")
        kg.args += ["--log-access", log]
        with kg, Client(kg.port) as c:
            reqs = [("GET", "/alone-1", {"X-First": "1", "X-Extra-A": "a"}, None),
                    ("POST", "/alone-2", {"X-Second": "2"}, b"body"),
                    ("GET", "/status/404", {}, None),
                    ("GET", "/_keygate/not-a-route", {}, None),
                    ("GET", "/alone-5", {}, None)]
            want_x = {"/alone-1": ["x-extra-a", "x-first"], "/alone-2": ["x-second"], "/alone-5": []}
            sent = []
            for m, t, h, body in reqs:
                r = c.request(m, t, h, body)
                sent.append((m, t, r.status, len(r.raw_head) + len(r.body)))
                if t in want_x:  # the upstream's default answer describes the request it got
                    got = r.json()
                    names = sorted(k.lower() for k, _ in got["headers"] if k.lower().startswith("x-") and
                                   not k.lower().startswith("x-forwarded"))
                    check(got["path"] == t and names == want_x[t],
                          "%s reached the upstream as %s with %r, expected %r (a header of an earlier "
                          "request on the connection?)" % (t, got["path"], names, want_x[t]))
            seen = [q[2] for q in up.requests()]
            check(seen == ["/alone-1", "/alone-2", "/status/404", "/alone-5"],
                  "the upstream saw %r" % seen)
            for m, t, status, nbytes in sent:
                lines, hits = wait_access(log, lambda l: ('"%s %s"' % (m, t)) in l)
                check(len(hits) == 1, "%d access-log lines for %s %s: %r" % (len(hits), m, t, lines[-6:]))
                fields = hits[0].split('" ', 1)[1].split()
                check(fields[0] == str(status) and fields[1] == str(nbytes),
                      "%s %s: logged status %s and %s bytes, the client got %d and %d bytes: %r"
                      % (m, t, fields[0], fields[1], status, nbytes, hits[0]))


def test_authorization_value_never_logged():
    with Upstream() as up:
        kg = Keygate("--require-auth=false", "--upstream", up.url)
        log = kg.path("access.log")
        kg.args += ["--log-access", log]
        with kg:
            for auth in ("Bearer SECRET-XYZ", "Basic U0VDUkVULVhZWjpwdw==", "ApiKey SECRET-XYZ"):
                request(kg.port, "GET", "/secret-probe", [("Authorization", auth)])
                request(kg.port, "GET", "/_keygate/check", [("Authorization", auth),
                                                            ("X-Original-URI", "/secret-check"),
                                                            ("X-Original-Method", "GET")])
            deadline = time.monotonic() + 5
            while True:  # until all six requests are logged
                lines, _ = wait_access(log, lambda l: True, timeout=0)
                probes = [l for l in lines if "/secret-probe" in l]
                checks = [l for l in lines if "/check" in l and "/health" not in l]
                if (len(probes) >= 3 and len(checks) >= 3) or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            check(len(probes) == 3, "%d access-log lines for 3 requests to /secret-probe" % len(probes))
            check(len(checks) == 3, "%d access-log lines for 3 requests to /_keygate/check" % len(checks))
            for what, text in (("access log", "\n".join(lines)), ("stderr", kg.stderr_text())):
                for secret in ("SECRET-XYZ", "U0VDUkVULVhZWjpwdw=="):
                    check(secret not in text, "the credential %s appears in the %s" % (secret, what))


def read_lines(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def test_access_log_buffer_is_written_when_full_and_at_exit():
    with Upstream() as up:
        # a flush interval far beyond the test: only a full buffer or the exit writes
        kg = Keygate("--require-auth=false", "--upstream", up.url, "--workers", "1",
                     "--log-access-buffer", "1KiB", "--log-access-flush", "1h")
        log = kg.path("access.log")
        kg.args += ["--log-access", log]
        with kg:
            with Client(kg.port) as cl:
                for i in range(3):
                    check(cl.request("GET", "/buffered-%d" % i).status == 200, "request %d" % i)
                check(read_lines(log) == [], "three short lines wait in the buffer: %r" % read_lines(log))
                for i in range(3, 40):  # about 100 bytes a line: the 1 KiB buffer fills several times
                    check(cl.request("GET", "/buffered-%d" % i).status == 200, "request %d" % i)
            lines = read_lines(log)
            check(10 <= len(lines) < 40, "a full buffer is written at once: %d lines in the file" % len(lines))
            check(all(l.endswith("principal=-") for l in lines), "only whole lines are written: %r" % lines[-1:])
            check(kg.stop() == 0, "keygate exits cleanly")
            lines = read_lines(log)
            paths = [l.split('"')[1].split()[1] for l in lines if "/buffered-" in l]
            check(paths == ["/buffered-%d" % i for i in range(40)],
                  "every line is written by the exit, in order: %r" % paths)


def test_access_log_reopens_on_sighup_and_keeps_buffered_lines():
    with Upstream() as up:
        kg = Keygate("--require-auth=false", "--upstream", up.url, "--workers", "1", "--log-access-flush", "50ms")
        log = kg.path("access.log")
        kg.args += ["--log-access", log]
        with kg:
            check(request(kg.port, "GET", "/before-rotate").status == 200, "before rotation")
            _, hits = wait_access(log, lambda l: "/before-rotate" in l)
            check(hits, "the line is written within the flush interval: %r" % read_lines(log))
            os.rename(log, log + ".1")  # what logrotate does
            mark = kg.log_mark()
            kg.send_signal(signal.SIGHUP)
            kg.wait_for_log(r"reloaded", 5, since=mark)
            check(request(kg.port, "GET", "/after-rotate").status == 200, "after rotation")
            _, hits = wait_access(log, lambda l: "/after-rotate" in l)
            check(hits, "lines after SIGHUP go to the new file: %r" % read_lines(log))
            check(not [l for l in read_lines(log + ".1") if "/after-rotate" in l], "nothing new in the rotated file")


# ---------------------------------------------------------------- precedence

def test_env_limit_applies_and_flag_overrides_env():
    with Upstream() as up:
        base = ("--require-auth=false", "--upstream", up.url)
        with Keygate(*base, env={"KEYGATE_LIMITS_MAX_HEADERS": "10"}) as kg:
            r = request(kg.port, "GET", "/env", headers(11))
            check(r.status == 431, "KEYGATE_LIMITS_MAX_HEADERS=10 and 11 headers: %d, want 431" % r.status)
        with Keygate(*base, "--limits-max-headers", "50", env={"KEYGATE_LIMITS_MAX_HEADERS": "10"}) as kg:
            r = request(kg.port, "GET", "/flag", headers(11))
            check(r.status == 200, "flag 50 over env 10, 11 headers: %d, want 200" % r.status)


def test_env_overrides_config_file():
    with Upstream() as up:
        kg = Keygate("--require-auth=false", "--upstream", up.url, env={"KEYGATE_LIMITS_MAX_HEADERS": "50"})
        cfg = kg.path("keygate.yaml")
        write(cfg, "limits:\n  max_headers: 10\n")
        kg.args += ["--config", cfg]
        with kg:
            r = request(kg.port, "GET", "/env-over-file", headers(11))
            check(r.status == 200, "env 50 over file 10, 11 headers: %d, want 200" % r.status)
    with Upstream() as up:
        kg = Keygate("--require-auth=false", "--upstream", up.url)
        cfg = kg.path("keygate.yaml")
        write(cfg, "limits:\n  max_headers: 10\n")
        kg.args += ["--config", cfg]
        with kg:
            r = request(kg.port, "GET", "/file", headers(11))
            check(r.status == 431, "file max_headers 10, 11 headers: %d, want 431" % r.status)
