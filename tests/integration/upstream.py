#!/usr/bin/env python3
"""A real HTTP/1.1 upstream for keygate's integration tests (loopback only).

    python3 upstream.py [--port N] [--log FILE]
                        [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]

Prints "PORT <n>" on stdout once it listens (port 0 = pick a free one). With
--log, appends one line per request ("REQ <conn> <METHOD> <target>") and per
deliberately dropped request ("DROP <conn> <request line>") and per response
cut short by the client ("ABORT <conn> <target> <error>") so tests can see
what reached the upstream without asking it over HTTP.

With --tls-cert and --tls-key it speaks HTTPS (an https upstream for
keygate) and logs each handshake: "TLS <conn> reused=0|1 client=<CN|->" (the
session was resumed; the client certificate's common name), or "TLSFAIL
<conn> <reason>" (the request handler never runs). --tls-client-ca requires
a client certificate signed by that CA (mutual TLS).

Routes (any method unless noted):
  default            200 JSON {method, path, version, headers, body_len,
                     body_sha256, conn, peer}; the body (Content-Length or
                     chunked) is read streaming and hashed as it arrives.
  GET /download?size=N[&chunked=1]
                     N bytes of pattern(), with Content-Length or chunked
                     in chunks of varied sizes.
  /slow?ms=N         waits N ms, then answers as default.
  /stall?after=A&ms=M&size=S
                     200 with Content-Length S: A bytes, then M ms of
                     silence, then the rest.
  /status/N[?hop=1]  status N with X-Status: N (204/304 without body); hop=1
                     adds hop-by-hop headers the proxy must remove.
  HEAD anything      the GET headers (with Content-Length), no body.
  GET /ws            WebSocket handshake, then echoes frames until close.
  /arm-close         200, then the next request on this connection is met by
                     closing the socket without a response (a stale pooled
                     keep-alive connection, as seen by the proxy).
  /echo-chunked      echoes the request body back, chunked.
  any path ?es=1     the default answer with X-elastic-product:
                     Elasticsearch, as an Elasticsearch upstream sends it
                     (the official clients refuse a 2xx without it).
  /early?status=N    answers N (default 413, a keep-alive JSON response) as
                     soon as it has the head, before reading the body; then
                     reads and discards the body as a server that keeps the
                     connection would, logging "EARLY <conn> drained N",
                     "EARLY <conn> eof" (the proxy closed the connection) or
                     "EARLY <conn> desync <bytes>" (what came was not the rest
                     of the body: another request written into it).
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import socket
import ssl
import threading
import time
import urllib.parse

# keygate adds X-Forwarded-* headers; don't let http.client's 100-header cap
# turn a limit test into an upstream failure.
http.client._MAXHEADERS = 10000

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BLOCK = 1 << 16
# pattern() is bytes(range(256)) repeated; PATTERN[off:off+n] for off < 256
# and n <= 2*BLOCK is the pattern starting at any offset.
PATTERN = bytes(range(256)) * ((2 * BLOCK) // 256 + 1)
CHUNK_SIZES = [BLOCK, 1, 4093, 2 * BLOCK, 17, 30000, BLOCK - 1, 256]

_log_lock = threading.Lock()
_log_file = None


def log(line):
    if _log_file is None:
        return
    with _log_lock:
        _log_file.write(line + "\n")
        _log_file.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keygate-test-upstream"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        self.tls_failed = False
        if isinstance(self.request, ssl.SSLSocket):
            port = self.client_address[1]
            try:
                self.request.settimeout(10)
                self.request.do_handshake()
                self.request.settimeout(None)
                cert = self.request.getpeercert() or {}
                cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
                log("TLS %d reused=%d client=%s" % (port, int(self.request.session_reused), cn[0] if cn else "-"))
            except (ssl.SSLError, OSError) as e:
                log("TLSFAIL %d %s" % (port, getattr(e, "reason", None) or type(e).__name__))
                self.tls_failed = True
        super().setup()
        self.armed = False

    def handle(self):
        if self.tls_failed:
            return
        try:
            super().handle()
        except (ConnectionError, TimeoutError, OSError) as e:
            # e.g. the proxy closed its upstream connection mid-response
            log("ABORT %d %s %s" % (self.client_address[1], getattr(self, "path", "-"),
                                    type(e).__name__))

    def handle_one_request(self):
        if self.armed:
            # The proxy reuses this connection: wait for its request, then
            # close without a word, as a server whose keep-alive timer fired.
            line = self.rfile.readline(65537)
            if line:
                log("DROP %d %s" % (self.client_address[1],
                                    line.decode("latin-1").strip()))
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        super().handle_one_request()

    # every method goes through dispatch()
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    # ---- request body ----
    def read_body(self, sink):
        """Reads the request body (Content-Length or chunked), feeding sink."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            return
                self._read_exact(size, sink)
                if self.rfile.readline(65537) not in (b"\r\n", b"\n"):
                    raise ConnectionError("bad chunk terminator")
        n = int(self.headers.get("Content-Length", "0") or "0")
        self._read_exact(n, sink)

    def _read_exact(self, n, sink):
        while n > 0:
            data = self.rfile.read1(min(n, 1 << 20)) if hasattr(self.rfile, "read1") \
                else self.rfile.read(min(n, 1 << 20))
            if not data:
                raise ConnectionError("eof in body")
            sink(data)
            n -= len(data)

    # ---- responses ----
    def send_json(self, status, obj, extra=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in extra:
            self.send_header(k, v)
        if status in (204, 304):
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def describe(self, body_len, body_sha):
        return {
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_len": body_len,
            "body_sha256": body_sha,
            "conn": self.client_address[1],
            "peer": self.client_address[0],
        }

    def dispatch(self):
        log("REQ %d %s %s" % (self.client_address[1], self.command, self.path))
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        path = url.path

        if path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if path == "/echo-chunked":
            return self.echo_chunked()
        if path == "/early":
            return self.early(int(q.get("status", "413")))

        h = hashlib.sha256()
        count = [0]

        def sink(data):
            h.update(data)
            count[0] += len(data)

        self.read_body(sink)
        info = self.describe(count[0], h.hexdigest())

        if path == "/download":
            return self.download(int(q.get("size", "0")), q.get("chunked") == "1")
        if path == "/slow":
            time.sleep(int(q.get("ms", "0")) / 1000.0)
            return self.send_json(200, info)
        if path == "/stall":
            return self.stall(int(q.get("after", "0")), int(q.get("ms", "0")), int(q.get("size", "100")))
        if path.startswith("/status/"):
            status = int(path[len("/status/"):])
            extra = [("X-Status", str(status))]
            if q.get("hop") == "1":
                extra += [("Connection", "X-Upstream-Hop"), ("X-Upstream-Hop", "1"),
                          ("Keep-Alive", "timeout=30"), ("Proxy-Connection", "keep-alive")]
            return self.send_json(status, info, extra)
        if path == "/arm-close":
            self.send_json(200, info)
            self.armed = True
            return
        if q.get("es") == "1":
            return self.send_json(200, info, [("X-elastic-product", "Elasticsearch")])
        return self.send_json(200, info)

    def download(self, size, chunked):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked and self.command != "HEAD":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        pos, i, w = 0, 0, self.wfile.write
        while pos < size:
            n = min(CHUNK_SIZES[i % len(CHUNK_SIZES)] if chunked else 2 * BLOCK, size - pos)
            off = pos % 256
            data = PATTERN[off:off + n]
            if chunked:
                w(b"%x\r\n" % n + data + b"\r\n")
            else:
                w(data)
            pos += n
            i += 1
        if chunked:
            w(b"0\r\n\r\n")
        self.wfile.flush()

    def stall(self, after, ms, size):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(b"x" * after)
        self.wfile.flush()
        time.sleep(ms / 1000.0)
        self.wfile.write(b"x" * (size - after))
        self.wfile.flush()

    def echo_chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def sink(data):
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")

        self.read_body(sink)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def early(self, status):
        self.send_json(status, self.describe(0, ""))
        self.wfile.flush()
        conn, n = self.client_address[1], [0]

        def sink(data):
            n[0] += len(data)

        try:
            self.read_body(sink)
            log("EARLY %d drained %d" % (conn, n[0]))
        except (ConnectionError, OSError):
            log("EARLY %d eof" % conn)
            self.close_connection = True
        except ValueError as e:  # a chunk-size line that is not one
            log("EARLY %d desync %r" % (conn, str(e)[:80]))
            self.close_connection = True

    # ---- WebSocket echo ----
    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode = head[0] & 0x0F
            masked = head[1] & 0x80
            n = head[1] & 0x7F
            if n == 126:
                n = int.from_bytes(self.rfile.read(2), "big")
            elif n == 127:
                n = int.from_bytes(self.rfile.read(8), "big")
            mask = self.rfile.read(4) if masked else b"\0\0\0\0"
            payload = bytearray(self.rfile.read(n))
            for j in range(len(payload)):
                payload[j] ^= mask[j % 4]
            self.wfile.write(ws_frame(opcode, bytes(payload)))
            self.wfile.flush()
            if opcode == 8:
                return


def ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    tls = None  # an ssl.SSLContext: HTTPS

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls:
            # the handshake runs on the connection's thread (Handler.setup),
            # so a client that never finishes one blocks nobody else
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


def main():
    global _log_file
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca")
    args = ap.parse_args()
    if args.log:
        _log_file = open(args.log, "a")
    srv = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.tls_client_ca)
        srv.tls = ctx
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
