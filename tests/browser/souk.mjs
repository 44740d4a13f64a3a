// Starts and stops a real `souk serve` for the console tests: a free port on
// 127.0.0.1 (SOUK_LISTEN=lo), a fresh data folder, a random console token.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Resolves once the gateway says it is ready (its own log line), rejects
// when souk exits first.
function waitReady(child) {
  return new Promise((resolve, reject) => {
    let buf = "";
    const onData = (d) => {
      buf += d;
      if (/gateway\.ready/.test(buf)) {
        child.stderr.off("data", onData);
        resolve();
      }
      if (buf.length > 1 << 20) buf = buf.slice(-4096);
    };
    child.stderr.on("data", onData);
    child.once("exit", (code, sig) => reject(new Error(`souk serve exited (${code ?? sig}) before ready:\n${buf}`)));
  });
}

export async function startSouk(extraEnv = {}) {
  const bin = process.env.SOUK_BIN;
  if (!bin) throw new Error("SOUK_BIN is not set (meson sets it)");
  const data = mkdtempSync(join(tmpdir(), "souk-console-"));
  const port = await freePort();
  const token = randomBytes(24).toString("hex");
  const env = {
    ...process.env,
    SOUK_DATA: data, SOUK_PORT: String(port), SOUK_LISTEN: "lo",
    SOUK_PUBLIC_URL: `http://127.0.0.1:${port}`,
    SOUK_CONSOLE_TOKEN: token, SOUK_AGENT: "echo", SOUK_DEBOUNCE_MS: "0",
    SOUK_LOG_LEVEL: "info", ...extraEnv,
  };
  for (const k of ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "PORT"]) delete env[k];
  for (const [k, v] of Object.entries(extraEnv)) if (v === undefined) delete env[k];
  const child = spawn(bin, ["serve"], { env, stdio: ["ignore", "inherit", "pipe"] });
  child.stderr.on("data", (d) => process.stderr.write(d));
  await waitReady(child);
  const base = `http://127.0.0.1:${port}`;
  return {
    base, port, token, data, child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 15000);
        await exited;
        clearTimeout(t);
      }
      rmSync(data, { recursive: true, force: true });
    },
  };
}

// Fails the test (exit 1) if it has not finished in ms: a test must never hang CI.
export function deadline(ms, cleanup) {
  const t = setTimeout(async () => {
    console.error(`timed out after ${ms} ms`);
    try { await cleanup(); } catch (e) { console.error(e); }
    process.exit(1);
  }, ms);
  t.unref();
  return t;
}
