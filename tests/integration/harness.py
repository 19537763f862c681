"""Helpers for keygate's black-box integration tests.

Everything here is bounded: every socket has a timeout, every wait has a
deadline, and every process a test starts is stopped when its context
manager exits (run.py also reaps leftovers after each test).
"""
import ctypes
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.abspath(os.environ.get("KG_TEST_BIN") or os.path.join(ROOT, "build", "keygate"))
ASAN = os.environ.get("KG_TEST_ASAN") == "1"
# startup under ASan is slower; still bounded
START_TIMEOUT = 10.0

# ---- per-test bookkeeping, driven by run.py ----
_procs = []        # every live process (Keygate/Upstream) a test started
_keygates = []     # every Keygate a test started, for stderr tails on failure
_notes = []        # "# ..." suffixes for the ok line


def begin_test():
    del _procs[:]
    del _keygates[:]
    del _notes[:]


def note(text):
    """Adds a comment to this test's ok line ("ok NAME # text")."""
    _notes.append(text)


def notes():
    return list(_notes)


class Skip(Exception):
    """Raised by skip(); run.py prints "skip NAME: reason" and counts it."""


def skip(reason):
    """Ends this test as skipped, saying why its behaviour was not checked
    (no IPv6 loopback here, a measurement ASan makes meaningless...).
    Call it only after every check that did run: what ran still counts."""
    raise Skip(reason)


def stderr_tails(n=20):
    """(label, last n lines of stderr) for each keygate this test started."""
    out = []
    for kg in _keygates:
        out.append(("keygate pid %s" % kg.pid, kg.stderr_text().splitlines()[-n:]))
    return out


def reap_all():
    """Safety net: kills whatever a test left running."""
    for p in list(_procs):
        try:
            p._kill()
        except Exception:
            pass
    del _procs[:]


def timeout(seconds):
    """Decorator: run.py gives this test `seconds` instead of the default."""
    def deco(fn):
        fn.timeout = seconds
        return fn
    return deco


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def _pdeathsig():
    # the child dies with the runner, even if the runner is SIGKILLed
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port(family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return s.getsockname()[1]


def has_ipv6_loopback():
    try:
        free_port(socket.AF_INET6)
        return True
    except OSError:
        return False


def run_cli(*args, env=None, timeout=10, cwd=None):
    """Runs `keygate ARGS` to completion; returns CompletedProcess (text)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    e.update(env or {})
    tmp = None
    if cwd is None:
        tmp = cwd = tempfile.mkdtemp(prefix="keygate-cli-")
    try:
        return subprocess.run([BIN] + list(args), env=e, cwd=cwd, capture_output=True,
                              text=True, errors="replace", timeout=timeout,
                              preexec_fn=_pdeathsig)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- HTTP client

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers      # [(name, value)] in order
        self.body = body            # bytes (b"" when streamed to a sink)
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception as e:
            raise Failure("status %d body is not JSON (%s): %r" % (self.status, e, self.body[:300]))

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


class ConnClosed(Exception):
    pass


class Client:
    """One HTTP/1.x client connection over a raw socket with a read buffer."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.port = port
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = bytearray()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def build(self, method, target, headers=None, body=None, version="HTTP/1.1", host=True):
        lines = ["%s %s %s" % (method, target, version)]
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in hdrs}
        if host is True and "host" not in names:
            h = "[%s]" % self.host if ":" in self.host else self.host
            lines.append("Host: %s:%d" % (h, self.port))
        elif isinstance(host, str):
            lines.append("Host: " + host)
        for k, v in hdrs:
            lines.append("%s: %s" % (k, v))
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            lines.append("Content-Length: %d" % len(body))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + (body or b"")

    def request(self, method, target, headers=None, body=None, version="HTTP/1.1", host=True):
        self.send(self.build(method, target, headers, body, version, host))
        return self.read_response(method)

    # -- reading --
    def _fill(self):
        try:
            data = self.sock.recv(1 << 18)
        except ConnectionResetError:
            data = b""
        if not data:
            raise ConnClosed("connection closed by peer")
        self.buf += data

    def _read_line(self, limit=1 << 20):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise Failure("line longer than %d bytes" % limit)
            self._fill()

    def read_exact(self, n, sink=None):
        out = bytearray() if sink is None else None
        while n > 0:
            if not self.buf:
                self._fill()
            take = min(n, len(self.buf))
            chunk = bytes(self.buf[:take]) if take < len(self.buf) else bytes(self.buf)
            del self.buf[:take]
            n -= take
            if sink is None:
                out += chunk
            else:
                sink(chunk)
        return bytes(out) if out is not None else b""

    def read_head(self):
        """Reads a status line + headers; returns (version, status, reason, headers, raw)."""
        raw = bytearray()
        line = self._read_line()
        raw += line
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise Failure("bad status line %r" % line)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self._read_line()
            raw += line
            s = line.decode("latin-1").rstrip("\r\n")
            if not s:
                break
            k, _, v = s.partition(":")
            headers.append((k.strip(), v.strip()))
        return version, status, reason, headers, bytes(raw)

    def read_response(self, method="GET", sink=None, skip_1xx=True):
        """Reads one response; the body goes to sink (if given) or .body.

        No body for HEAD, 1xx, 204, 304; chunked and Content-Length decoded;
        otherwise the body runs until the server closes.
        """
        while True:
            version, status, reason, headers, raw = self.read_head()
            if skip_1xx and 100 <= status < 200 and status != 101:
                continue
            break
        resp = Response(version, status, reason, headers, b"", raw)
        if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
            return resp
        parts = [] if sink is None else None
        put = parts.append if sink is None else sink
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if "chunked" in te:
            while True:
                line = self._read_line()
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while self._read_line() not in (b"\r\n", b"\n"):
                        pass
                    break
                self.read_exact(size, put)
                if self._read_line() not in (b"\r\n", b"\n"):
                    raise Failure("bad chunk terminator")
        elif cl is not None:
            self.read_exact(int(cl), put)
        else:
            while True:
                if self.buf:
                    put(bytes(self.buf))
                    del self.buf[:]
                try:
                    self._fill()
                except ConnClosed:
                    break
        if sink is None:
            resp.body = b"".join(parts)
        return resp

    def wait_readable(self, timeout):
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def is_closed(self, timeout=5.0):
        """True when the peer closes (EOF or reset) within timeout with no data.

        Raises Failure if data arrives instead."""
        if self.buf:
            raise Failure("expected the connection to close, got data %r" % bytes(self.buf[:200]))
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass
        if data:
            raise Failure("expected the connection to close, got data %r" % data[:200])
        return True


# the token encryption key the Bee-mode tests start keygate with
BEE_KEY = "integration-test-encryption-key"
_bcrypt_hashes = {}


def bcrypt_hash(plain, cost=4):
    """A bcrypt hash of plain made by `keygate bcrypt` (cached per run)."""
    if (plain, cost) not in _bcrypt_hashes:
        r = run_cli("bcrypt", "--cost", str(cost), plain)
        check(r.returncode == 0, "keygate bcrypt failed: %s" % r.stderr)
        _bcrypt_hashes[plain, cost] = r.stdout.strip()
    return _bcrypt_hashes[plain, cost]


def request(port, method, target, headers=None, body=None, timeout=10.0, **kw):
    """One request on a fresh connection; returns the Response."""
    with Client(port, timeout=timeout) as c:
        return c.request(method, target, headers, body, **kw)


def expect_error(resp, status, *words):
    """Checks a keygate error: status, JSON {"code": status, "message": ...}
    with Content-Type application/json, message containing each word."""
    check(resp.status == status, "expected status %d, got %d: %r" % (status, resp.status, resp.body[:300]))
    ct = resp.header("Content-Type") or ""
    check(ct.lower().startswith("application/json"),
          "status %d: expected Content-Type application/json, got %r" % (status, ct))
    j = resp.json()
    check(isinstance(j, dict), "status %d: body is not a JSON object: %r" % (status, resp.body[:300]))
    check(j.get("code") == status, "status %d: JSON code is %r" % (status, j.get("code")))
    msg = j.get("message")
    check(isinstance(msg, str) and msg, "status %d: JSON has no message: %r" % (status, j))
    for w in words:
        check(w.lower() in msg.lower(), "status %d: message %r does not mention %r" % (status, msg, w))
    return j


# ---------------------------------------------------------------- patterns

PATTERN_BLOCK = bytes(range(256)) * 4096      # 1 MiB, starts at pattern offset 0


def pattern_sha256(size):
    """sha256 of the first `size` bytes of bytes(range(256)) repeated."""
    h = hashlib.sha256()
    full, rest = divmod(size, len(PATTERN_BLOCK))
    for _ in range(full):
        h.update(PATTERN_BLOCK)
    h.update(PATTERN_BLOCK[:rest])
    return h.hexdigest()


def big_size():
    """Size of the big-body tests: 300 MB, or 32 MB under ASan."""
    return 32 * 1000 * 1000 if ASAN else 300 * 1000 * 1000


# ---------------------------------------------------------------- processes

class _Proc:
    proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self in _procs:
            _procs.remove(self)


class Upstream(_Proc):
    """Runs upstream.py as a subprocess on a free port; .port, .requests()."""

    def __init__(self, *args):
        """args: more upstream.py arguments (--tls-cert ...: see
        test_tls_upstream.TLSUpstream)."""
        self.tmp = tempfile.mkdtemp(prefix="keygate-up-")
        self.log_path = os.path.join(self.tmp, "requests.log")
        self.port = None
        self.url = None
        self.args = list(args)

    def ready_check(self):
        r = request(self.port, "GET", "/__upstream_ready", timeout=5)
        check(r.status == 200, "upstream.py answered %d" % r.status)

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "upstream.py"), "--port", "0", "--log", self.log_path] + self.args,
            stdout=subprocess.PIPE, stderr=open(os.path.join(self.tmp, "stderr"), "wb"),
            preexec_fn=_pdeathsig)
        _procs.append(self)
        try:
            deadline = time.monotonic() + 10
            line = b""
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                r, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
                if not r:
                    raise Failure("upstream.py did not report its port within 10 s")
                c = os.read(self.proc.stdout.fileno(), 1)
                if not c:
                    raise Failure("upstream.py exited: %s" % self._stderr())
                line += c
            self.port = int(line.split()[1])
            self.url = "http://127.0.0.1:%d" % self.port
            self.ready_check()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _stderr(self):
        try:
            with open(os.path.join(self.tmp, "stderr"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            return ""

    def log_lines(self):
        try:
            with open(self.log_path) as f:
                return [l.rstrip("\n") for l in f if not l.rstrip().endswith("/__upstream_ready")]
        except FileNotFoundError:
            return []

    def requests(self):
        """[(conn, method, target)] of requests that reached the upstream."""
        out = []
        for l in self.log_lines():
            p = l.split(" ", 3)
            if p[0] == "REQ":
                out.append((int(p[1]), p[2], p[3]))
        return out

    def drops(self):
        return [l for l in self.log_lines() if l.startswith("DROP ")]

    def wait_log(self, pred, timeout=5.0):
        """Waits until a log line matches pred(line); returns it or None."""
        deadline = time.monotonic() + timeout
        while True:
            for l in self.log_lines():
                if pred(l):
                    return l
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def wait_request(self, pred, timeout=5.0):
        """Waits until a request matching pred(method, target) reached the upstream."""
        deadline = time.monotonic() + timeout
        while True:
            for conn, m, t in self.requests():
                if pred(m, t):
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._kill()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False


class Keygate(_Proc):
    """Runs `keygate serve` on a free port and waits for health 200.

        with Keygate("--require-auth=false", "--upstream", up.url) as kg:
            request(kg.port, "GET", "/x")
    """

    def __init__(self, *args, env=None, api_prefix="/_keygate", wait=True, port=None):
        self.args = list(args)
        self.env = env or {}
        self.health_path = api_prefix.rstrip("/") + "/health"
        self.wait = wait
        self.port = port or free_port()
        self.tmp = tempfile.mkdtemp(prefix="keygate-it-")
        self.data_dir = os.path.join(self.tmp, "data")
        os.mkdir(self.data_dir, 0o700)  # keygate refuses a data dir others can write
        self.stderr_path = os.path.join(self.tmp, "stderr")
        self.stdout_path = os.path.join(self.tmp, "stdout")
        self._final_stderr = None
        self.returncode = None

    def path(self, name):
        """A path inside this keygate's private temp dir."""
        return os.path.join(self.tmp, name)

    def __enter__(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("KEYGATE_"):
                del env[k]
        env.update(self.env)
        cmd = [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--workers", "1",
               "--data-dir", self.data_dir, "--log-level", "debug"] + self.args
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                     stdout=open(self.stdout_path, "wb"),
                                     stderr=open(self.stderr_path, "wb"),
                                     preexec_fn=_pdeathsig)
        _procs.append(self)
        _keygates.append(self)
        if self.wait:
            try:
                self.wait_healthy()
            except BaseException:
                self.__exit__(*sys.exc_info())
                raise
        return self

    def wait_healthy(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure("keygate exited with %d during start-up (%s)"
                              % (self.proc.returncode, " ".join(self.cmd[1:])))
            try:
                with Client(self.port, timeout=2) as c:
                    r = c.request("GET", self.health_path, [("Connection", "close")])
                if r.status == 200:
                    return
                last = "status %d" % r.status
            except (OSError, ConnClosed, Failure) as e:
                last = "%s: %s" % (type(e).__name__, e)
            time.sleep(0.02)
        raise Failure("keygate not healthy within %.0f s (GET %s: %s)" % (timeout, self.health_path, last))

    def alive(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends sig, waits up to timeout (kills after), returns the exit code
        (None if it had to be killed)."""
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            return self.returncode
        self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            self.returncode = None
        return self.returncode

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stderr_text(self):
        if self._final_stderr is not None:
            return self._final_stderr
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_mark(self):
        """Position in stderr; pass to wait_for_log(since=) to see only newer lines."""
        try:
            return os.path.getsize(self.stderr_path)
        except OSError:
            return 0

    def wait_for_log(self, regex, timeout=5.0, since=0, flags=re.I):
        """Waits until a stderr line (after byte offset since) matches; returns it."""
        rx = re.compile(regex, flags)
        deadline = time.monotonic() + timeout
        while True:
            with open(self.stderr_path, "rb") as f:
                f.seek(since)
                text = f.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                raise Failure("no keygate log line matching /%s/ within %.1f s" % (regex, timeout))
            if self.proc.poll() is not None:
                raise Failure("keygate exited (%d) while waiting for log /%s/" % (self.proc.returncode, regex))
            time.sleep(0.02)

    def vm_hwm_kib(self):
        """Peak RSS (VmHWM) of the keygate process in KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise Failure("no VmHWM in /proc/%d/status" % self.proc.pid)

    def __exit__(self, exc_type=None, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.stop(signal.SIGTERM, 10)
        self._kill()
        self._final_stderr = self.stderr_text()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if exc_type is None and self.proc is not None:
            # A crash or a sanitizer report at any point fails the test.
            rc = self.proc.returncode
            err = self._final_stderr
            if re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", err):
                raise Failure("keygate sanitizer report (exit %s); see stderr" % rc)
            crashes = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE)
            if rc is not None and rc < 0 and -rc in crashes:
                raise Failure("keygate died of %s" % signal.Signals(-rc).name)
        return False
