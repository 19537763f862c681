"""Debian's python3-elasticsearch (7.17), unchanged, against keygate:
    python3 elasticsearch_py7.py SCENARIO
with KG_URL (keygate) and KG_PASSWORD (elastic's) in the environment. Run by
the Python that has the package (Debian's /usr/bin/python3); prints one JSON
object of what each call returned or raised, and the client's warnings, for
tests/integration/test_compat_elasticsearch.py to judge. Scenarios:
  keys       elastic creates, gets and invalidates an API key; the key
             authenticates and calls upstream routes before and after
  anonymous  _authenticate without credentials (GET / is refused first)"""
import json
import os
import sys
import warnings

import elasticsearch

URL = os.environ["KG_URL"]
PW = os.environ["KG_PASSWORD"]
# an https KG_URL: KG_CA is the CA that signed keygate's certificate
TLS = {"ca_certs": os.environ["KG_CA"]} if os.environ.get("KG_CA") else {}


def outcome(fn, *args, **kw):
    """What a call returned, or how it failed (the client raises on >= 400)."""
    try:
        return {"ok": True, "body": fn(*args, **kw)}
    except elasticsearch.TransportError as e:
        return {"ok": False, "error": type(e).__name__, "status": e.status_code, "type": str(e.error),
                "info": e.info if isinstance(e.info, (dict, list, str)) else None}
    except Exception as e:  # UnsupportedProductError and the like: not from the server
        return {"ok": False, "error": type(e).__name__, "message": str(e)[:300]}


def keys(out):
    es = elasticsearch.Elasticsearch([URL], http_auth=("elastic", PW), max_retries=0, **TLS)
    out["create"] = outcome(es.security.create_api_key, body={
        "name": "py-key",
        "role_descriptors": {"r": {
            "cluster": ["monitor"],
            "applications": [{"application": "keygate", "privileges": ["GET"], "resources": ["/data/*"]}]}}})
    if not out["create"]["ok"]:
        return
    key = out["create"]["body"]
    out["get"] = outcome(es.security.get_api_key, id=key["id"])
    out["authenticate"] = outcome(es.security.authenticate)
    user = elasticsearch.Elasticsearch([URL], api_key=(key["id"], key["api_key"]), max_retries=0, **TLS)
    out["key_authenticate"] = outcome(user.security.authenticate)
    out["data"] = outcome(user.transport.perform_request, "GET", "/data/x")
    out["other"] = outcome(user.transport.perform_request, "GET", "/other")
    out["invalidate"] = outcome(es.security.invalidate_api_key, body={"ids": [key["id"]]})
    out["data_after_invalidate"] = outcome(user.transport.perform_request, "GET", "/data/after")


def anonymous(out):
    es = elasticsearch.Elasticsearch([URL], max_retries=0, **TLS)
    out["authenticate"] = outcome(es.security.authenticate)


def main():
    out = {"client": ".".join(map(str, elasticsearch.__version__))}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        {"keys": keys, "anonymous": anonymous}[sys.argv[1]](out)
    out["warnings"] = [str(w.message) for w in seen]
    print(json.dumps(out))


main()
