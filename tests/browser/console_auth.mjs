// The console's door, over real HTTP against a real `souk serve`: without
// SOUK_CONSOLE_TOKEN (or with a wrong one) the page and its websocket answer
// 401; the token given once as ?token= becomes an HttpOnly, SameSite=Strict
// cookie that opens both; with no token configured (or one that cannot be a
// cookie) the console is not there.
// Needs only node (no browser).
import assert from "node:assert/strict";
import { request } from "node:http";
import { startSouk, deadline } from "./souk.mjs";

// A websocket handshake; resolves with the HTTP status the server answered.
function upgrade(base, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(base + "/console/ws", {
      headers: {
        Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "souk-console",
        ...headers,
      },
    });
    req.on("upgrade", (res, socket) => { socket.destroy(); resolve(res.statusCode); });
    req.on("response", (res) => { res.resume(); resolve(res.statusCode); });
    req.on("error", reject);
    req.end();
  });
}

const get = (url, headers = {}) => fetch(url, { headers, redirect: "manual" });

let souk = null, off = null;
deadline(60000, async () => { await souk?.stop(); await off?.stop(); });
try {
  souk = await startSouk();
  const { base, token } = souk;

  assert.equal((await get(base + "/console")).status, 401, "page without the token");
  assert.equal((await get(base + "/console?token=wrong")).status, 401, "page with a wrong token");
  assert.equal((await get(base + "/console?token=" + token.slice(0, -1))).status, 401, "a prefix of the token");
  assert.equal((await get(base + "/console", { Cookie: "souk_console=" + token + "x" })).status, 401,
               "page with a wrong cookie");
  assert.equal(await upgrade(base), 401, "websocket without the token");
  assert.equal(await upgrade(base, { Cookie: "souk_console=nope" }), 401, "websocket with a wrong cookie");
  assert.equal(await upgrade(base, { Cookie: "souk_console=" + token + "0".repeat(600) }), 401,
               "the token followed by more");

  const once = await get(base + "/console?token=" + token);
  assert.equal(once.status, 303, "the token in the query is exchanged for a cookie");
  assert.equal(once.headers.get("location"), "/console");
  const cookie = once.headers.get("set-cookie");
  assert.match(cookie, /^souk_console=[0-9a-f]+; Path=\/console; HttpOnly; SameSite=Strict$/);
  const pair = cookie.split(";")[0];

  const page = await get(base + "/console", { Cookie: pair });
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("cache-control"), "no-store");
  assert.match(await page.text(), /new WebSocket\(url, "souk-console"\)/);
  assert.equal(await upgrade(base, { Cookie: pair }), 101, "websocket with the cookie");
  assert.equal(await upgrade(base, { Cookie: pair, "Sec-WebSocket-Protocol": "other" }), 400);
  assert.equal(await upgrade(base, { Cookie: pair, Origin: base }), 101, "from its own page");
  assert.equal(await upgrade(base, { Cookie: pair, Origin: "http://127.0.0.1:1" }), 403,
               "a page of another site (the same host, another port) cannot use the cookie");
  assert.equal((await get(base + "/console/media/" + "0".repeat(32) + ".ogg")).status, 404);
  assert.equal((await get(base + "/healthz")).status, 200, "the gateway is still fine");
  await souk.stop();
  souk = null;

  off = await startSouk({ SOUK_CONSOLE_TOKEN: undefined });
  assert.equal((await get(off.base + "/console")).status, 404, "no token configured: no console");
  assert.equal((await get(off.base + "/console?token=" + off.token)).status, 404);
  assert.equal(await upgrade(off.base), 404, "no token configured: no websocket");
  await off.stop();
  off = null;

  // a token that cannot travel in a cookie keeps the console off
  off = await startSouk({ SOUK_CONSOLE_TOKEN: "not a cookie; value=1234567890" });
  assert.equal((await get(off.base + "/console")).status, 404, "an unusable token: no console");
  await off.stop();
  off = null;
  console.log("console_auth: ok");
  process.exit(0);
} catch (e) {
  console.error(e);
  await souk?.stop();
  await off?.stop();
  process.exit(1);
}
