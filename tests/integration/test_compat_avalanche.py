"""The real `avalanche` npm client (avalanchejs 3.x) against keygate's
AvalancheGo Auth API, through to a JSON-RPC upstream standing in for a node."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import Keygate, ROOT, check, note
from test_tls import Certs, tls_keygate

HERE = os.path.join(ROOT, "tests", "compat", "avalanche")
PW = "Str0ng-Passw0rd-for-keygate-2026!"


class Node(BaseHTTPRequestHandler):
    """Answers info.* JSON-RPC calls as an AvalancheGo node would."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}")
        result = {"version": "avalanche/1.11.1", "databaseVersion": "v1.4.5", "gitCommit": "x", "vmVersions": {}}
        if req.get("method") == "info.getNodeID":
            result = {"nodeID": "NodeID-keygate"}
        body = json.dumps({"jsonrpc": "2.0", "result": result, "id": req.get("id")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def npm_install():
    if os.path.isdir(os.path.join(HERE, "node_modules", "avalanche")):
        return
    npm = shutil.which("npm")
    check(npm, "npm is not installed (tools/deps.sh --tests installs it)")
    p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=HERE, capture_output=True,
                       text=True, timeout=600)
    check(p.returncode == 0, "npm ci failed: %s" % p.stderr[-2000:])


def run_client(no_fetch, certs=None):
    """certs: the client speaks HTTPS to keygate's TLS listener, whose
    certificate certs' CA signed (Node trusts it by NODE_EXTRA_CA_CERTS)."""
    npm_install()
    node = shutil.which("node")
    check(node, "node is not installed")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    tmp = tempfile.mkdtemp(prefix="keygate-npm-")
    try:
        pw = os.path.join(tmp, "pw")
        with open(pw, "w") as f:
            f.write(PW + "\n")
        args = ("--api-auth-required", "--api-auth-password-file", pw,
                "--upstream", "http://127.0.0.1:%d" % srv.server_address[1])
        with (tls_keygate(certs, *args) if certs else Keygate(*args)) as kg:
            env = dict(os.environ, KG_PORT=str(kg.port), KG_PASSWORD=PW, KG_NEW_PASSWORD="N3w-Str0ng-Passw0rd-2026?")
            if certs:
                env.update(KG_PORT=str(kg.tls_port), KG_PROTOCOL="https", NODE_EXTRA_CA_CERTS=certs.ca)
            if no_fetch:
                env["KG_NO_FETCH"] = "1"
            p = subprocess.run([node, "auth_client.js"], cwd=HERE, env=env, capture_output=True, text=True, timeout=120)
            lines = [l for l in p.stdout.splitlines() if l.startswith(("ok ", "not ok "))]
            bad = [l for l in lines if l.startswith("not ok")]
            check(p.returncode == 0 and not bad and len(lines) >= 7,
                  "avalanche client: exit %d, %s %s" % (p.returncode, "; ".join(bad) or p.stdout[-500:], p.stderr[-500:]))
            note("%d client checks" % len(lines))
    finally:
        srv.shutdown()
        srv.server_close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_avalanche_npm_client_with_its_default_fetch_adapter():
    run_client(no_fetch=False)


def test_avalanche_npm_client_with_the_node_http_adapter_sees_exact_refusals():
    run_client(no_fetch=True)


def test_avalanche_npm_client_over_tls_with_the_test_ca():
    with Certs() as certs:
        run_client(no_fetch=False, certs=certs)
