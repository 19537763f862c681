// The real `avalanche` npm client (avalanchejs 3.x) against keygate's
// AvalancheGo Auth API. Env: KG_PORT, KG_PASSWORD, KG_NEW_PASSWORD, and
// KG_PROTOCOL=https for keygate's TLS listener (NODE_EXTRA_CA_CERTS names
// the CA of its certificate).
// Prints "ok ..." / "not ok ..." per check; exits 1 on any failure.
// KG_NO_FETCH=1 hides fetch, so the client uses axios' Node http adapter
// (as on Node < 18), which exposes the status and body of a refusal; with
// fetch (the default on Node 20) a refusal is an error with code
// ERR_BAD_REQUEST and nothing else.
"use strict";
if (process.env.KG_NO_FETCH) delete globalThis.fetch;
const { Avalanche } = require("avalanche");
const exact = Boolean(process.env.KG_NO_FETCH);

const port = Number(process.env.KG_PORT);
const password = process.env.KG_PASSWORD;
const newPassword = process.env.KG_NEW_PASSWORD;
let failed = 0;

// A refusal of a protected endpoint: HTTP 401 with AvalancheGo's message.
function isRefusal(o, message) {
  return exact ? o.status === 401 && o.message === message : o.code === "ERR_BAD_REQUEST";
}

function report(ok, what) {
  console.log((ok ? "ok " : "not ok ") + what);
  if (!ok) failed++;
}

// The client throws on a JSON-RPC error in a 2xx answer, and (depending on
// its HTTP adapter) either throws or returns on a 401: both end up here.
async function outcome(promise) {
  try {
    const resp = await promise;
    const data = resp && resp.data;
    return { status: resp ? resp.status : 0, message: data && data.error ? data.error.message : null, data };
  } catch (e) {
    const r = e.response;
    return { status: r ? r.status : 0, code: e.code, message: r && r.data && r.data.error ? r.data.error.message : String(e.message) };
  }
}

(async () => {
  const avalanche = new Avalanche("127.0.0.1", port, process.env.KG_PROTOCOL || "http");
  const auth = avalanche.Auth();
  const token = await auth.newToken(password, ["/ext/info"]);
  report(typeof token === "string" && token.split(".").length === 3, "newToken returns a JWT");

  avalanche.setAuthToken(token);
  const version = await outcome(avalanche.Info().callMethod("info.getNodeVersion"));
  report(version.status === 200 && version.data && version.data.result && version.data.result.version === "avalanche/1.11.1",
    "info.getNodeVersion through keygate with the token (" + JSON.stringify(version) + ")");

  const info = avalanche.Info();
  const other = await outcome(info.callMethod("info.getNodeID", undefined, "/ext/bc/X"));
  report(isRefusal(other, "the provided auth token does not allow access to this endpoint"),
    "a token for /ext/info is refused on /ext/bc/X (" + JSON.stringify(other) + ")");

  const revoked = await auth.revokeToken(password, token);
  report(revoked === true, "revokeToken returns result.success === true");
  const after = await outcome(info.callMethod("info.getNodeVersion"));
  report(isRefusal(after, "the provided auth token was revoked"),
    "the revoked token is refused (" + JSON.stringify(after) + ")");

  const changed = await auth.changePassword(password, newPassword);
  report(changed === true, "changePassword returns result.success === true");
  const old = await outcome(auth.newToken(password, ["*"]));
  report(old.message === "incorrect password", "newToken with the old password fails (" + JSON.stringify(old) + ")");
  const fresh = await auth.newToken(newPassword, ["*"]);
  report(typeof fresh === "string" && fresh.length > 20, "newToken with the new password works");
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.log("not ok unexpected error: " + (e && e.stack ? e.stack : e));
  process.exit(1);
});
