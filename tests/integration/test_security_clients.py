"""The client address and the access log (issue 11): an X-Forwarded-For
entry becomes the client address only when it parses as an IP address, so
a forged header can neither forge an access-log line nor pick its own
throttle bucket; every client-controlled field of the access log is
escaped (src/access_log.c: TIME CLIENT "METHOD PATH" STATUS BYTES DURus
scheme=S principal=P)."""
import base64
import ipaddress
import json
import os
import re
import shutil
import tempfile
import time

from harness import Client, Keygate, Upstream, check, request, run_cli, bcrypt_hash, BEE_KEY

KEY = BEE_KEY

# one access-log line; every field is printable ASCII without spaces, quotes
# or backslashes, except \xNN escapes
FIELD = r'(?:[!#-\[\]-~]|\\x[0-9a-f]{2})+'
LINE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (%s) "(%s) (%s)" (\d{3}) \d+ \d+us scheme=%s principal=%s$'
                  % (FIELD, FIELD, FIELD, FIELD, FIELD))




class AccessLog:
    """A temp dir holding the access-log file; .lines() reads it."""

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="keygate-alog-")
        self.path = os.path.join(self.tmp, "access.log")
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                return [l.rstrip(b"\n") for l in f.read().split(b"\n") if l]
        except FileNotFoundError:
            return []

    def wait_line(self, marker, timeout=5.0):
        """The line holding marker (bytes), waited for up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for l in self.lines():
                if marker in l:
                    return l
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)


def logging_proxy(up, alog, *extra):
    return Keygate("--require-auth=false", "--upstream", up.url, "--trusted-proxies", "127.0.0.1",
                   "--log-access", alog.path, "--log-access-buffer", "0", *extra)


def parse(line):
    m = LINE.match(line.decode("latin-1"))
    check(m, "access-log line does not have the expected shape (a raw space, quote or byte?): %r" % line)
    return m.group(1), m.group(2), m.group(3), int(m.group(4))


def is_ip(s):
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


# (X-Forwarded-For as sent, the client address the access log must show;
#  None: any valid IP address)
XFF_CASES = [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8::1", "2001:db8::1"),
    ("not-an-ip, 198.51.100.2", "198.51.100.2"),
    ("198.51.100.3, 127.0.0.1", "198.51.100.3"),
    ('1.2.3.4 "x" evil', "127.0.0.1"),
    ("not-an-ip", "127.0.0.1"),
    ('"', "127.0.0.1"),
    ("1.2.3.4:5678", "127.0.0.1"),
    ("1.2.3.4/24", "127.0.0.1"),
    ("[2001:db8::1]", "127.0.0.1"),
    ("x" * 200, "127.0.0.1"),
    ("1.2.3.4\\x", "127.0.0.1"),
    ("1.2.3.4\xc3\xa9", "127.0.0.1"),
    ("203.0.113.7, not-an-ip", None),
    ("203.0.113.7, 1.2.3.4 evil", None),
]


def test_x_forwarded_for_that_is_not_an_ip_never_becomes_the_client_address():
    bad = []
    with Upstream() as up, AccessLog() as alog, logging_proxy(up, alog) as kg:
        for i, (xff, want) in enumerate(XFF_CASES):
            marker = "/xff-%d" % i
            with Client(kg.port) as c:
                r = c.request("GET", marker, [("X-Forwarded-For", xff)])
            if r.status != 200:
                bad.append("XFF %r: status %d %r" % (xff, r.status, r.body[:100]))
                continue
            line = alog.wait_line(b'"GET %s"' % marker.encode())
            if line is None:
                bad.append("XFF %r: no access-log line for GET %s" % (xff, marker))
                continue
            m = LINE.match(line.decode("latin-1"))
            if not m:
                bad.append("XFF %r: access-log line has a forged shape: %r" % (xff, line))
                continue
            client = m.group(1)
            if not is_ip(client):
                bad.append("XFF %r: client field %r is not an IP address (line %r)" % (xff, client, line))
            elif want is not None and client != want:
                bad.append("XFF %r: client field %r, want %r" % (xff, client, want))
    check(not bad, "%d of %d X-Forwarded-For cases differ: %s" % (len(bad), len(XFF_CASES), " | ".join(bad)))


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored():
    with Upstream() as up, AccessLog() as alog, \
            Keygate("--require-auth=false", "--upstream", up.url, "--trusted-proxies", "192.0.2.0/24",
                    "--log-access", alog.path, "--log-access-buffer", "0") as kg:
        r = request(kg.port, "GET", "/untrusted", [("X-Forwarded-For", "198.51.100.9")])
        check(r.status == 200, "status %d" % r.status)
        line = alog.wait_line(b'"GET /untrusted"')
        check(line is not None, "no access-log line for GET /untrusted")
        client = parse(line)[0]
        check(client == "127.0.0.1", "an untrusted peer's X-Forwarded-For became the client: %r" % client)


def test_access_log_escapes_quotes_backslashes_controls_and_high_bytes():
    targets = [
        (b'/alog-1/a"b', b"/alog-1/a\\x22b"),
        (b"/alog-2/\xc3\xa9\xff", b"/alog-2/\\xc3\\xa9\\xff"),
        (b"/alog-3/a'b<c>{d}|e^f`g", None),
        (b"/alog-4/a\\b", None),          # refused 400; still logged, escaped
        (b"/alog-5/x?token=SECRET-IN-QUERY", b"/alog-5/x"),
        (b'/alog-6/x?q="\\x"', None),
        (b"/alog-end", b"/alog-end"),
    ]
    with Upstream() as up, AccessLog() as alog, logging_proxy(up, alog) as kg:
        for target, _ in targets:
            with Client(kg.port) as c:
                c.send(b"GET " + target + b" HTTP/1.1\r\nHost: x.test\r\nUser-Agent: a\"b\\c\xc3\xa9\r\n"
                       b"Connection: close\r\n\r\n")
                c.read_response()
        # every target has been answered; the last one's line marks the end
        check(alog.wait_line(b'"GET /alog-end"') is not None, "no access-log line for /alog-end: %r" % alog.lines())
        lines = alog.lines()
        for l in lines:
            parse(l)  # the strict shape: no raw space, quote, backslash, control or high byte anywhere
        text = b"\n".join(lines)
        check(b"SECRET-IN-QUERY" not in text, "the query string reached the access log: %r" % text)
        for target, want in targets:
            if want is not None:
                check(any(('"GET %s"' % want.decode()).encode() in l for l in lines),
                      "no access-log line with the escaped path %r: %r" % (want, lines))
        for l in lines:
            check(b'"' not in l.split(b'"', 2)[2], "a raw quote after the request field: %r" % l)


def test_throttle_bucket_is_the_real_address_not_a_forged_forwarded_for():
    with Keygate("--restricted", "--admin-password", bcrypt_hash("test"), "--token-encryption-key", KEY,
                 "--throttle-max-failures", "3", "--trusted-proxies", "127.0.0.1") as kg:
        def auth(password, xff):
            body = json.dumps({"role": "consumer", "expiry": 60}).encode()
            hdr = "Basic " + base64.b64encode((":" + password).encode()).decode()
            return request(kg.port, "POST", "/auth", headers=[("Authorization", hdr),
                                                               ("X-Forwarded-For", xff)], body=body)
        # a guesser rotating garbage X-Forwarded-For values stays one client: the peer
        statuses = [auth("wrong%d" % i, "garbage-%d" % i).status for i in range(4)]
        check(statuses == [401, 401, 401, 429], "4 wrong passwords with rotating garbage X-Forwarded-For: %r, "
              "want [401, 401, 401, 429] (each garbage value must not be its own throttle bucket)" % statuses)
        r = auth("test", '1.2.3.4 "x"')
        check(r.status == 429, "the throttled peer with another garbage X-Forwarded-For: %d, want 429" % r.status)
        r = auth("test", "203.0.113.5")
        check(r.status == 201, "another real address must not be locked out: %d %r" % (r.status, r.body[:200]))
