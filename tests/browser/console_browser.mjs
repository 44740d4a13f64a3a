// The web console in a real browser: Debian's chromium driven headless by
// playwright-core (no browser download), against a real `souk serve` started
// here (the built-in agent, console sender). The page sends a message as a
// test user and shows the shop's inline reply (greeting the profile name it
// was given); the outbox table shows that reply's row; asking for a ticket
// gets the acknowledgement, then the later reply (from the sender's outbound
// event) naming the ticket the tickets table shows; a voice note from a file
// is stored, served back byte for byte and answered; the kill button
// SIGKILLs the user's session actor and the tree shows it restarted with a
// new pid; killing the gateway itself, the page reconnects to the new one;
// and the restarted session answers. Exits 77 (skipped) when chromium or the npm
// package is not installed (scripts/setup installs both).
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSouk, deadline } from "./souk.mjs";

const CHROMIUM = process.env.SOUK_CHROMIUM || "/usr/bin/chromium";
let chromium;
try {
  ({ chromium } = createRequire(import.meta.url)("playwright-core"));
} catch {
  console.log("SKIP: playwright-core is not installed (scripts/setup runs npm ci in tests/browser)");
  process.exit(77);
}
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: no chromium at ${CHROMIUM} (scripts/setup installs Debian's)`);
  process.exit(77);
}

const WAID = "15550001111";
let souk = null, browser = null; // a persistent context: its own fresh profile folder
const profile = mkdtempSync(join(tmpdir(), "souk-chromium-"));
async function cleanup() {
  await browser?.close().catch(() => {});
  await souk?.stop();
  rmSync(profile, { recursive: true, force: true });
}
deadline(100000, cleanup);

try {
  souk = await startSouk({ SOUK_AGENT: "builtin" });
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => console.error("page error:", e));

  // the token once in the URL; the gateway moves it into a cookie
  await page.goto(`${souk.base}/console?token=${souk.token}`);
  assert.equal(new URL(page.url()).pathname, "/console");
  assert.equal(new URL(page.url()).search, "", "the token left the address bar");
  await page.locator("#conn", { hasText: "live" }).waitFor();
  await page.locator('#tree tr[data-name="gateway"]').waitFor();

  // a message from a test user, and the shop's reply
  await page.fill("#number", WAID);
  await page.fill("#name", "Zoe Tester");
  await page.dispatchEvent("#number", "change");
  await page.fill("#text", "hello");
  await page.click("#send");
  const reply = page.locator("#messages .msg.in").first();
  await reply.waitFor();
  assert.match(await reply.textContent(), /Zoe/, "the shop greets the profile name the page gave");
  const meta = await page.locator("#messages .msg.out .meta").first().textContent();
  assert.match(meta, /answered inline/);

  // the reply's outbox row, refreshed live
  await page.locator("#outbox tr", { hasText: "r:SM" }).first().waitFor();
  assert.match(await page.locator("#outbox tr").first().textContent(), /inline/);

  // a slow-path turn: acknowledged now, the reply later through the sender
  await page.fill("#text", "I want to open a support ticket: my parcel arrived damaged");
  await page.click("#send");
  const later = page.locator("#messages .msg.in", { hasText: /TK-[A-Z0-9]+/ });
  await later.waitFor();
  assert.match(await later.locator(".meta").textContent(), /later reply/);
  const ticket = (await later.textContent()).match(/TK-[A-Z0-9]+/)[0];
  await page.locator("#tickets tr", { hasText: ticket }).waitFor();
  assert.match(await page.locator("#messages .msg.out .meta").nth(1).textContent(), /reply follows/);

  // a voice note from a file: stored, served at its URL, answered
  const answered = await page.locator("#messages .msg.in").count();
  const note = Buffer.concat([Buffer.from("OggS"), Buffer.alloc(200, 7)]);
  await page.setInputFiles("#voice", { name: "note.ogg", mimeType: "audio/ogg", buffer: note });
  await page.click("#send-voice");
  await page.locator("#messages .msg.in").nth(answered).waitFor();
  const stored = readdirSync(join(souk.data, "console-media"));
  assert.equal(stored.length, 1);
  assert.deepEqual(readFileSync(join(souk.data, "console-media", stored[0])), note);
  const audio = page.locator("#messages .msg.out audio");
  await audio.waitFor();
  const src = await audio.getAttribute("src");
  assert.equal(src, `${souk.base}/console/media/${stored[0]}`, "the page plays its MediaUrl0");
  const served = await fetch(src);
  assert.equal(served.status, 200);
  assert.equal(served.headers.get("content-type"), "audio/ogg");
  assert.deepEqual(Buffer.from(await served.arrayBuffer()), note);

  // kill the user's session actor from the page and watch it come back
  const row = page.locator(`#tree tr[data-name="s-${WAID}"]`);
  await row.waitFor();
  await page.waitForFunction((name) => {
    const tr = document.querySelector(`#tree tr[data-name="${name}"]`);
    return tr && tr.dataset.pid !== "" && tr.querySelector(".state").textContent === "ready";
  }, `s-${WAID}`);
  const before = await row.getAttribute("data-pid");
  await row.locator("button.kill").click();
  await page.waitForFunction(([name, old]) => {
    const tr = document.querySelector(`#tree tr[data-name="${name}"]`);
    return tr && tr.dataset.pid !== "" && tr.dataset.pid !== old
      && tr.querySelector(".state").textContent === "ready";
  }, [`s-${WAID}`, before]);
  const after = await row.getAttribute("data-pid");
  assert.notEqual(after, before, "a new session process");
  assert.equal(await row.locator(".restarts").textContent(), "1");
  await page.locator("#events div", { hasText: `exited s-${WAID}` }).first().waitFor();

  // kill the gateway itself: the page reconnects to its successor
  const gw = page.locator('#tree tr[data-name="gateway"]');
  const gwBefore = await gw.getAttribute("data-pid");
  await gw.locator("button.kill").click();
  await page.waitForFunction((old) => {
    const tr = document.querySelector('#tree tr[data-name="gateway"]');
    return tr && tr.dataset.pid !== "" && tr.dataset.pid !== old
      && tr.querySelector(".state").textContent === "ready"
      && document.getElementById("conn").textContent === "live";
  }, gwBefore);

  // the restarted session answers too
  const before_restart = await page.locator("#messages .msg.in").count();
  await page.fill("#text", "hello again");
  await page.click("#send");
  await page.locator("#messages .msg.in").nth(before_restart).waitFor();
  assert.match(await page.locator("#messages .msg.in").nth(before_restart).textContent(), /Zoe/);

  console.log(`console_browser: ok (session pid ${before} -> ${after})`);
  await cleanup();
  process.exit(0);
} catch (e) {
  console.error(e);
  await cleanup();
  process.exit(1);
}
