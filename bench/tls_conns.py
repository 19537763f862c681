#!/usr/bin/env python3
"""New connections, one request each, as fast as one client can open them.

  tls_conns.py MODE --port PORT [--seconds S] [--tls12] [--header H]...

MODE:
  plain   TCP only: connect, one GET, read the response, close (the cost of
          a connection without TLS, to subtract)
  new     TLS, a full handshake every time (no session offered)
  reuse   TLS, every connection offers the session (ticket) the previous
          one was given: a resumed handshake

Each connection sends GET /bytes/abc with "Connection: close" and reads the
response to its end, so a TLS 1.3 ticket (sent after the handshake) has
arrived before the next connection offers it. Prints one line:
"connections resumed failed". Certificates are not verified (both proxies
serve the same throw-away certificate). Every wait is bounded."""
import argparse
import socket
import ssl
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("plain", "new", "reuse"))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--tls12", action="store_true", help="TLS 1.2 only (default: 1.3)")
    ap.add_argument("--header", action="append", default=[])
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_2 if a.tls12 else ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = ctx.maximum_version = v
    req = ("GET /bytes/abc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n"
           % "".join(h + "\r\n" for h in a.header)).encode()

    n = resumed = failed = 0
    session = None
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        raw = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        # the handshake's last flight and the request are two small writes:
        # without this, Nagle holds the request for the server's delayed ACK
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s = raw
            if a.mode != "plain":
                s = ctx.wrap_socket(raw, server_hostname="localhost",
                                    session=session if a.mode == "reuse" else None)
                resumed += s.session_reused
            s.sendall(req)
            buf = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            if not buf.startswith(b"HTTP/1.1 200"):
                failed += 1
            if a.mode == "reuse":
                session = s.session
        except (OSError, ssl.SSLError):
            failed += 1
        finally:
            raw.close()
        n += 1
    print(n, resumed, failed)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a bench run reports, it does not trace back
        print("tls_conns: %s" % e, file=sys.stderr)
        sys.exit(1)
