// The official Elasticsearch JavaScript client (@elastic/elasticsearch, 8.x
// or 9.x: the one installed in the current directory) against keygate's
// /_security API keys, unchanged. Run with the client's directory as cwd:
//   cd tests/compat/elasticsearch8 && node ../elasticsearch_client.js
// Env: KG_URL (keygate), KG_PASSWORD (elastic's). Prints one JSON object:
// what each call returned (status, content type, product header, body) or
// how it failed, for tests/integration/test_compat_elasticsearch.py to judge.
// Exits 0 whenever it could report; the Python side decides what is right.
"use strict";
const path = require("path");
const { Client, errors } = require(require.resolve("@elastic/elasticsearch", { paths: [process.cwd()] }));
const clientVersion = require(path.join(process.cwd(), "node_modules", "@elastic", "elasticsearch", "package.json")).version;

const node = process.env.KG_URL;
const password = process.env.KG_PASSWORD;
const out = { client: clientVersion };

// A call's outcome with meta: true: what came back, or the error as the
// client reports it (ResponseError carries the answer; others a name only).
async function outcome(promise) {
  try {
    const r = await promise;
    return {
      status: r.statusCode,
      type: r.headers["content-type"],
      product: r.headers["x-elastic-product"],
      body: r.body,
    };
  } catch (e) {
    const m = e.meta || {};
    return {
      error: e.name,
      is_response_error: e instanceof errors.ResponseError,
      status: m.statusCode,
      type: m.headers && m.headers["content-type"],
      www_authenticate: m.headers && m.headers["www-authenticate"],
      body: m.body,
      message: String(e.message).slice(0, 500),
    };
  }
}

(async () => {
  const admin = new Client({ node, auth: { username: "elastic", password }, maxRetries: 0 });
  const meta = { meta: true };
  // top-level parameters: the 9.x form, which 8.x accepts too
  out.create = await outcome(admin.security.createApiKey({
    name: "compat-key",
    expiration: "1d",
    metadata: { team: "compat" },
    role_descriptors: {
      reader: { applications: [{ application: "keygate", privileges: ["GET"], resources: ["/data/*"] }] },
    },
  }, meta));
  const key = out.create.body || {};
  out.get = await outcome(admin.security.getApiKey({ id: key.id }, meta));
  out.query = await outcome(admin.security.queryApiKeys({ query: { ids: { values: [key.id] } } }, meta));
  out.update = await outcome(admin.security.updateApiKey({ id: key.id, metadata: { team: "compat", v: 2 } }, meta));
  out.get_after_update = await outcome(admin.security.getApiKey({ id: key.id }, meta));
  out.authenticate = await outcome(admin.security.authenticate(undefined, meta));

  const user = new Client({ node, auth: { apiKey: key.encoded }, maxRetries: 0 });
  out.key_authenticate = await outcome(user.security.authenticate(undefined, meta));
  // es=1: the recording upstream answers as Elasticsearch would (with
  // X-elastic-product), which the client requires of every 2xx
  out.data = await outcome(user.transport.request({ method: "GET", path: "/data/x", querystring: { es: "1" } }, meta));
  out.other = await outcome(user.transport.request({ method: "GET", path: "/other/x", querystring: { es: "1" } }, meta));
  out.invalidate = await outcome(admin.security.invalidateApiKey({ ids: [key.id] }, meta));
  out.data_after_invalidate = await outcome(user.transport.request({
    method: "GET", path: "/data/after", querystring: { es: "1" },
  }, meta));
  await user.close();
  await admin.close();
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.log(JSON.stringify(Object.assign(out, { fatal: String(e && e.stack || e) })));
});
