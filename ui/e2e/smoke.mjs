// Smoke test of the desktop chain (Xvfb, tauri-driver, WebKitWebDriver, the
// app with its UI embedded): opens the app, waits for the first screen,
// saves a screenshot, and measures
// - cold start: from asking tauri-driver for a session (which launches the
//   app) until the root element is rendered and enabled, and until the
//   wizard's source kinds (loaded from the shell) are shown;
// - idle memory: after 10 s idle, the resident memory (RSS, and PSS which
//   counts shared pages once) of the app and its WebKit processes, from
//   /proc.
//
// Env: APP_BINARY, SCREENSHOT_DIR, DISPLAY; WEBDRIVER_URL (default
// http://127.0.0.1:4444).
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Builder, By, until } from "selenium-webdriver";

const APP_BINARY = process.env.APP_BINARY;
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ?? "/tmp/target-screens";
const SERVER = process.env.WEBDRIVER_URL ?? "http://127.0.0.1:4444";
if (!APP_BINARY) {
  console.error("smoke: APP_BINARY is not set");
  process.exit(1);
}
mkdirSync(SCREENSHOT_DIR, { recursive: true });

/** Processes as { pid, ppid, exe, display }. */
function processes() {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0")[0];
      const env = readFileSync(`/proc/${name}/environ`, "utf8").split("\0");
      const display = (env.find((e) => e.startsWith("DISPLAY=")) ?? "").slice(8);
      out.push({ pid: Number(name), ppid, cmd, display });
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

function kib(pid, file, field) {
  try {
    const line = readFileSync(`/proc/${pid}/${file}`, "utf8")
      .split("\n")
      .find((l) => l.startsWith(`${field}:`));
    return line ? Number(line.split(/\s+/)[1]) : 0;
  } catch {
    return 0;
  }
}

/** The app started on this display and every process under it. */
function appTree() {
  const all = processes();
  const app = all.find((p) => p.cmd === APP_BINARY && p.display === process.env.DISPLAY);
  if (!app) return [];
  const tree = [app];
  for (let i = 0; i < tree.length; i++) {
    tree.push(...all.filter((p) => p.ppid === tree[i].pid));
  }
  return tree;
}

const started = Date.now();
const driver = await new Builder()
  .usingServer(SERVER)
  .withCapabilities({ browserName: "wry", "tauri:options": { application: APP_BINARY } })
  .build();
try {
  const session = Date.now();
  const root = await driver.wait(until.elementLocated(By.css("#root > *")), 30_000);
  await driver.wait(until.elementIsEnabled(root), 30_000);
  const ready = Date.now();
  await driver.wait(async () => (await driver.findElements(By.css("[data-testid^='kind-']"))).length >= 3, 30_000);
  const kinds = Date.now();
  const png = await driver.takeScreenshot();
  writeFileSync(join(SCREENSHOT_DIR, "smoke-first-screen.png"), png, "base64");
  console.log(
    `smoke: session created (app launched) after ${session - started} ms; root rendered and enabled after ${ready - started} ms; source kinds from the shell shown after ${kinds - started} ms; title "${await driver.getTitle()}"`,
  );
  await driver.sleep(10_000);
  const tree = appTree();
  if (tree.length === 0) throw new Error("cannot find the app's process on this display");
  let rss = 0;
  let pss = 0;
  for (const p of tree) {
    const r = kib(p.pid, "status", "VmRSS");
    const s = kib(p.pid, "smaps_rollup", "Pss");
    rss += r;
    pss += s;
    console.log(`smoke:   pid ${p.pid} ${p.cmd.split("/").pop()}: RSS ${(r / 1024).toFixed(1)} MiB, PSS ${(s / 1024).toFixed(1)} MiB`);
  }
  console.log(
    `smoke: idle memory after 10 s: RSS ${(rss / 1024).toFixed(1)} MiB, PSS ${(pss / 1024).toFixed(1)} MiB over ${tree.length} processes`,
  );
} finally {
  await driver.quit();
}
