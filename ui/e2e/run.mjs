// End-to-end walk through the desktop studio, in the real app under
// tauri-driver: the bundled sample shop -> a transform with preview -> a
// DuckDB target, a search index and a Redis cache (its connection tested)
// -> save, run, watch, browse the rows, search the index from the graph,
// browse the cache's keys -> export the TOML.
// Then `syncline run --once` of the exported file must give the same target
// tables (row counts and a checksum per table).
//
// Env: APP_BINARY (the app), SYNCLINE_BIN (the CLI), SCREENSHOT_DIR,
// E2E_WORKDIR (empty folder); WEBDRIVER_URL (default http://127.0.0.1:4444).
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Builder, By, Key, until } from "selenium-webdriver";
import { DuckDBInstance } from "@duckdb/node-api";
import { screenshotPng, xwdAvailable } from "./xshot.mjs";

function need(name) {
  const v = process.env[name];
  if (!v) fail(`environment variable ${name} is not set`);
  return v;
}

function fail(message) {
  console.error(`E2E FAILED: ${message}`);
  process.exit(1);
}

const APP_BINARY = need("APP_BINARY");
const SYNCLINE_BIN = need("SYNCLINE_BIN");
const SCREENSHOT_DIR = need("SCREENSHOT_DIR");
const WORKDIR = need("E2E_WORKDIR");
const SERVER = process.env.WEBDRIVER_URL ?? "http://127.0.0.1:4444";

const STUDIO_DIR = join(WORKDIR, "studio");
const EXPORT_DIR = join(WORKDIR, "export");
const PIPELINE = join(STUDIO_DIR, "shop.toml");
const EXPORTED = join(EXPORT_DIR, "shop.toml");
const TRANSFORM = "open_orders";
const SQL =
  "SELECT o.order_id, o.customer_id, o.quantity, o.amount, o.status, p.category FROM source o LEFT JOIN products p USING (product_id) WHERE o.status <> 'returned'";

// The Redis cache's keys live under a prefix of this run's own, removed
// before and after (the machine's Redis is shared with other tests).
const REDIS_PREFIX = `e2e${process.pid}:`;
function redisCli(args) {
  return execFileSync("redis-cli", ["-h", "127.0.0.1", "-p", "6379", ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
}
function redisScan(pattern) {
  return redisCli(["--scan", "--pattern", pattern]).split("\n").filter(Boolean);
}
function redisClear() {
  const keys = redisScan(`${REDIS_PREFIX}*`);
  for (let i = 0; i < keys.length; i += 5000) redisCli(["DEL", ...keys.slice(i, i + 5000)]);
  return keys.length;
}
redisClear();
process.on("exit", () => {
  try {
    redisClear();
  } catch {
    // Redis gone: nothing of this run's is left in it.
  }
});

mkdirSync(SCREENSHOT_DIR, { recursive: true });
for (const d of [STUDIO_DIR, EXPORT_DIR]) {
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
}

// Pictures of the X display (xwd) where there is one: WebKitWebDriver's own
// screenshot command can wait forever for a repaint under Xvfb.
const X_SHOTS = Boolean(process.env.DISPLAY) && xwdAvailable();

let driver;
let step = "starting the app";
let shots = 0;

const log = (m) => console.log(`[e2e] ${new Date().toISOString().slice(11, 23)} ${m}`);
function setStep(name) {
  step = name;
  log(`step: ${name}`);
}

/** A WebDriver call that does not answer in time fails instead of hanging. */
function bounded(what, promise, ms = 60_000) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer from WebDriver in ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
const sel = (id) => By.css(`[data-testid="${id}"]`);

async function find(id, timeout = 20_000) {
  try {
    const el = await driver.wait(until.elementLocated(sel(id)), timeout, `no element ${id}`);
    await driver.wait(until.elementIsVisible(el), timeout, `${id} is not visible`);
    return el;
  } catch (e) {
    throw new Error(`waiting for [data-testid="${id}"]: ${e.message}`);
  }
}

// Clicks go through the page (element.click()): WebKitWebDriver's native
// click can wait forever on a page whose IPC requests are in flight.
async function click(id) {
  const el = await find(id);
  await driver.wait(until.elementIsEnabled(el), 20_000, `${id} stays disabled`);
  await bounded(`click ${id}`, driver.executeScript("arguments[0].click();", el));
}

async function focus(el, what) {
  await bounded(`focus ${what}`, driver.executeScript("arguments[0].focus();", el));
}

/** Ticks a checkbox or radio button (through the page, as `click`). */
async function tick(el, what) {
  await bounded(`tick ${what}`, driver.executeScript("arguments[0].click();", el));
}

/** Chooses an option of a <select> the way a user's choice reaches React. */
async function choose(id, value) {
  const el = await find(id);
  const ok = await bounded(
    `choose ${value} in ${id}`,
    driver.executeScript(
      `const [el, value] = arguments;
       if (![...el.options].some((o) => o.value === value)) return false;
       Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, "value").set.call(el, value);
       el.dispatchEvent(new Event("change", { bubbles: true }));
       return true;`,
      el,
      value,
    ),
  );
  if (!ok) throw new Error(`${id} has no option ${value}`);
}

/** Replaces an input's text (select all, then type: React sees every key). */
async function type(id, text) {
  const el = await find(id);
  await focus(el, id);
  await bounded(`clear ${id}`, el.sendKeys(Key.chord(Key.CONTROL, "a"), Key.BACK_SPACE));
  await bounded(`type into ${id}`, el.sendKeys(text));
  const now = await el.getAttribute("value");
  if (now !== text) throw new Error(`typed "${text}" into ${id}, it holds "${now}"`);
}

/** Answers the native file dialog titled `title` (GTK's, shown by the
 *  shell, out of WebDriver's reach) with `path`, through the X display. */
function answerFileDialog(title, path) {
  const xdo = (args) => execFileSync("xdotool", args, { encoding: "utf8", timeout: 30_000 }).trim();
  const id = xdo(["search", "--sync", "--onlyvisible", "--name", title]).split("\n")[0];
  xdo(["windowfocus", "--sync", id]);
  xdo(["key", "--clearmodifiers", "ctrl+l"]);
  xdo(["type", "--delay", "20", path]);
  // The location entry may take the first Return for its completion: press
  // it until the dialog is gone.
  const open = () => {
    try {
      return xdo(["search", "--onlyvisible", "--name", title]) !== "";
    } catch {
      return false; // xdotool exits 1 when no window matches
    }
  };
  const deadline = Date.now() + 30_000;
  while (open()) {
    if (Date.now() > deadline) throw new Error(`the dialog "${title}" did not take ${path}`);
    xdo(["key", "--window", id, "Return"]);
    execFileSync("sleep", ["0.25"]);
  }
}

async function text(id, timeout) {
  return (await find(id, timeout)).getText();
}

/** Waits until `f` returns a truthy value; returns it. */
async function eventually(what, f, timeout = 60_000, every = 250) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await driver.sleep(every);
  }
}

async function shot(name) {
  shots += 1;
  const file = join(SCREENSHOT_DIR, `${String(shots).padStart(2, "0")}-${name}.png`);
  await driver.sleep(300);
  if (X_SHOTS) writeFileSync(file, screenshotPng(process.env.DISPLAY));
  else writeFileSync(file, Buffer.from(await bounded("screenshot", driver.takeScreenshot()), "base64"));
  log(`screenshot ${file}`);
}

async function currentStep() {
  return (await driver.findElement(By.css('[aria-current="step"]')).getText()).replace(/^\d+\s*/, "");
}

async function next(expected) {
  await click("wizard-next");
  await eventually(`step "${expected}"`, async () => (await currentStep()) === expected, 60_000);
}

/** RSS of the app and every process under it (the WebKit web and network processes), in KiB. */
function treeRss() {
  const rows = execFileSync("ps", ["-eo", "pid=,ppid=,rss=,args="], { encoding: "utf8" })
    .split("\n")
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter(Boolean)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), rss: Number(m[3]), args: m[4] }));
  const roots = rows.filter((r) => r.args.split(" ")[0] === APP_BINARY);
  const seen = new Set(roots.map((r) => r.pid));
  let grew = true;
  while (grew) {
    grew = false;
    for (const r of rows) {
      if (!seen.has(r.pid) && seen.has(r.ppid)) {
        seen.add(r.pid);
        grew = true;
      }
    }
  }
  const procs = rows.filter((r) => seen.has(r.pid));
  return { kib: procs.reduce((a, r) => a + r.rss, 0), processes: procs.map((r) => r.args.split(" ")[0]) };
}

const metrics = {};

async function walk(sessionStarted) {
  setStep("opening the wizard");
  // Interactive: the source kinds (from the engine) are listed and clickable.
  await find("kind-files", 60_000);
  metrics.coldStartMs = Date.now() - sessionStarted;
  log(`cold start to an interactive first screen: ${metrics.coldStartMs} ms (from the WebDriver session request)`);
  await driver.sleep(5000);
  const idle = treeRss();
  metrics.idleRssMiB = Math.round(idle.kib / 1024);
  metrics.idleProcesses = idle.processes;
  log(`idle memory: ${metrics.idleRssMiB} MiB RSS in ${idle.processes.length} processes (${idle.processes.join(", ")})`);

  setStep("wizard: source");
  await type("wizard-name", "shop");
  await type("wizard-folder", STUDIO_DIR);
  await tick(await (await find("kind-sample")).findElement(By.css("input")), "the sample shop");
  await shot("wizard-source");

  setStep("wizard: settings");
  await next("Settings");
  const path = await (await find("source-path")).getAttribute("value");
  if (path !== "shop") throw new Error(`the sample source's folder is "${path}", expected "shop"`);
  await shot("wizard-settings");

  setStep("wizard: connection test");
  await next("Connection");
  await find("checks", 60_000);
  const failed = await driver.findElements(sel("check-fail"));
  if (failed.length) throw new Error(`connection test failed: ${await (await find("checks")).getText()}`);
  await shot("wizard-connection");

  setStep("wizard: tables");
  await next("Tables");
  for (const t of ["customers", "products", "orders"]) {
    await find(`table-${t}`, 60_000);
    const include = await find(`table-include-${t}`);
    if (!(await include.isSelected())) await tick(include, `table ${t}`);
  }
  await shot("wizard-tables");

  setStep("wizard: transform");
  await next("Transform");
  await type("transform-name", TRANSFORM);
  await choose("transform-input", "shop.orders");
  await tick(await find("transform-lookup-shop.products"), "the products lookup");
  const content = await (await find("sql-editor")).findElement(By.css(".cm-content"));
  await focus(content, "the SQL editor");
  await content.sendKeys(Key.chord(Key.CONTROL, "a"), Key.BACK_SPACE);
  await content.sendKeys(SQL);
  await content.sendKeys(Key.ESCAPE);
  const written = await content.getText();
  if (written.replace(/\s+/g, " ").trim() !== SQL) throw new Error(`the SQL editor holds:\n${written}`);

  setStep("wizard: preview");
  await click("preview-run");
  await eventually("preview rows", async () => (await driver.findElements(sel("preview-grid"))).length > 0 || (await driver.findElements(sel("preview-error"))).length > 0 || (await driver.findElements(sel("preview-failed"))).length > 0, 120_000);
  for (const id of ["preview-error", "preview-failed"]) {
    const errs = await driver.findElements(sel(id));
    if (errs.length) throw new Error(`preview failed: ${await errs[0].getText()}`);
  }
  const schema = await text("preview-schema");
  for (const col of ["order_id", "amount", "category"]) {
    if (!schema.includes(col)) throw new Error(`preview output schema lacks ${col}: ${schema}`);
  }
  const counts = await text("preview-counts");
  const m = /([\d,]+) input rows sampled → ([\d,]+) output rows/.exec(counts);
  if (!m || Number(m[2].replace(/,/g, "")) === 0) throw new Error(`preview shows no output rows: ${counts}`);
  const rowsShown = await driver.findElements(By.css('[data-testid="preview-grid"] [data-row]'));
  if (rowsShown.length === 0) throw new Error("the preview grid shows no rows");
  log(`preview: ${counts}`);
  await shot("wizard-preview");

  setStep("wizard: targets");
  await next("Targets");
  await find("target-warehouse");
  const input = await find(`target-warehouse-input-${TRANSFORM}`);
  if (!(await input.isSelected())) throw new Error("the transform is not an input of the DuckDB target");
  // A second target: a search index over the same transform output.
  await choose("target-new-kind", "search");
  await type("target-new-name", "index");
  await click("target-add");
  await find("target-index");
  const indexInput = await find(`target-index-input-${TRANSFORM}`);
  if (!(await indexInput.isSelected())) throw new Error("the transform is not an input of the search target");
  const indexPath = await (await find("target-index-path")).getAttribute("value");
  if (indexPath !== "index.index") throw new Error(`the search target's folder is "${indexPath}", expected "index.index"`);
  // A third target: a Redis cache of the same output, its connection tested here.
  await choose("target-new-kind", "redis");
  await type("target-new-name", "cache");
  await click("target-add");
  await find("target-cache");
  await type("target-cache-prefix", REDIS_PREFIX);
  await click("target-cache-test");
  const cacheChecks = await find("target-cache-checks", 60_000);
  await bounded("scroll to the checks", driver.executeScript("arguments[0].scrollIntoView({ block: 'center' });", cacheChecks));
  const cacheFails = await driver.findElements(sel("target-cache-check-fail"));
  if (cacheFails.length) throw new Error(`the cache's connection test failed: ${await cacheFails[0].getText()}`);
  const passed = await driver.findElements(sel("target-cache-check-pass"));
  if (!passed.length) throw new Error(`the cache's connection test passed nothing: ${await text("target-cache-checks")}`);
  log(`cache connection: ${(await text("target-cache-checks")).replace(/\s+/g, " ").slice(0, 200)}`);
  await shot("wizard-targets");

  setStep("wizard: review");
  await next("Review");
  const toml = await text("review-toml", 60_000);
  if (!toml.includes(`[transforms.${TRANSFORM}]`)) throw new Error(`the reviewed TOML has no transform:\n${toml}`);
  await eventually("validation", async () => (await driver.findElements(sel("review-valid"))).length > 0 || (await driver.findElements(sel("review-problems"))).length > 0);
  const problems = await driver.findElements(sel("review-problems"));
  if (problems.length) throw new Error(`the pipeline has problems: ${await problems[0].getText()}`);
  await shot("wizard-review");

  setStep("wizard: save");
  await next("Save & run");
  await type("save-path", PIPELINE);
  await click("save-button");
  await find("save-status", 30_000);
  if (!existsSync(PIPELINE)) throw new Error(`${PIPELINE} was not written`);
  await shot("wizard-save");

  setStep("pipeline: run");
  await click("run-button");
  await find("pipeline-view");
  await find("pipeline-tables", 120_000);
  await find(`pipeline-progress-shop.orders`, 60_000);
  // The graph draws its nodes: source, transform and target, each visible.
  await eventually("the pipeline graph's nodes", async () => {
    const shown = await bounded(
      "graph nodes",
      driver.executeScript(
        "return [...document.querySelectorAll('[data-testid=pipeline-graph] .react-flow__node')].filter((n) => getComputedStyle(n).visibility === 'visible' && n.getBoundingClientRect().width > 0).map((n) => n.textContent);",
      ),
    );
    if (shown.length < 3) throw new Error(`graph nodes shown: ${JSON.stringify(shown)}`);
    return true;
  }, 20_000);
  await shot("pipeline-progress");
  // The files source follows changes: the run is caught up once every table streams.
  const tables = ["shop.customers", "shop.products", "shop.orders"];
  await eventually(
    "every table streaming",
    async () => {
      const state = await text("pipeline-state");
      if (state === "failed") throw new Error(`the pipeline failed: ${await driver.findElement(sel("pipeline-view")).getText()}`);
      for (const t of tables) {
        const phase = (await text(`pipeline-phase-${t}`)).toLowerCase();
        if (phase !== "streaming" && phase !== "done") return false;
      }
      return true;
    },
    900_000,
    1000,
  );
  // Caught up: every table's counts stay the same over a few seconds.
  let previous = "";
  await eventually(
    "the counts to settle",
    async () => {
      const now = await text("pipeline-tables");
      const settled = now === previous;
      previous = now;
      return settled;
    },
    600_000,
    4000,
  );
  const ordersRow = await text("pipeline-table-shop.orders");
  log(`orders: ${ordersRow}`);
  await shot("pipeline-streaming");

  setStep("pipeline: verify");
  // Every target compared with its source while the pipeline runs: the
  // warehouse takes the folder's tables as they are and holds all of them.
  await click("pipeline-verify");
  await eventually("the warehouse's verdict", async () => {
    const errs = await driver.findElements(sel("pipeline-error"));
    if (errs.length) throw new Error(`verify failed: ${await errs[0].getText()}`);
    const badges = await driver.findElements(sel("verify-badge-warehouse"));
    if (!badges.length) return false;
    const verdict = await badges[0].getText();
    if (!verdict.includes("in sync")) throw new Error(`the warehouse does not verify: ${verdict}`);
    return true;
  }, 300_000);
  const verdictNode = await bounded(
    "the warehouse's node",
    driver.executeScript(
      "return [...document.querySelectorAll('[data-testid=pipeline-graph] .react-flow__node')].map((n) => n.textContent).find((t) => t.startsWith('warehouse')) || '';",
    ),
  );
  if (!verdictNode.includes("in sync")) throw new Error(`the warehouse's node shows no verdict: ${verdictNode}`);
  log(`verify: ${await text("pipeline-verify-result")}`);
  await shot("pipeline-verified");

  setStep("data view");
  await click("pipeline-open-data-warehouse");
  await find("data-view");
  await click(`data-table-${TRANSFORM}`, 30_000);
  await find("data-grid", 60_000);
  const meta = await text("data-result-meta");
  if (!/^[1-9][\d,]* rows/.test(meta)) throw new Error(`the data view shows no rows of ${TRANSFORM}: ${meta}`);
  log(`data: ${meta}`);
  await shot("data-table");

  setStep("data view: ad-hoc SQL");
  const editor = await (await find("data-sql")).findElement(By.css(".cm-content"));
  await focus(editor, "the SQL editor");
  await editor.sendKeys(Key.chord(Key.CONTROL, "a"), Key.BACK_SPACE);
  await editor.sendKeys(`SELECT category, count(*) AS orders, sum(amount) AS revenue FROM ${TRANSFORM} GROUP BY category ORDER BY category`);
  await editor.sendKeys(Key.ESCAPE);
  await click("data-run");
  await eventually("the grouped result", async () => /^[1-9] rows/.test(await text("data-result-meta")), 60_000);
  await shot("data-sql");

  setStep("search from the graph");
  await click("nav-pipelines");
  // The search index's node on the graph holds a search box.
  await type("graph-search-index-query", "category:garden");
  await click("graph-search-index-run");
  await find("search-view");
  await eventually("search results", async () => {
    const errs = await driver.findElements(sel("search-error"));
    if (errs.length) throw new Error(`the search failed: ${await errs[0].getText()}`);
    return (await driver.findElements(sel("search-meta"))).length > 0;
  }, 60_000);
  const found = await text("search-meta");
  const hit = /^([\d,]+) of ([\d,]+) matching documents/.exec(found);
  if (!hit || Number(hit[2].replace(/,/g, "")) === 0) throw new Error(`the search found nothing: ${found}`);
  const firstRow = await bounded(
    "the first match",
    driver.executeScript("const r = document.querySelector('[data-testid=search-grid] [data-row]'); return r ? r.textContent : '';"),
  );
  if (!firstRow.includes("category: **garden**")) throw new Error(`the matches are not marked: ${firstRow.slice(0, 300)}`);
  log(`search: ${found}`);
  await shot("search");

  setStep("redis keys");
  await click("nav-pipelines");
  await click("pipeline-redis-cache");
  await find("redis-view");
  // The cache's tables by key template, with their key counts; a table's keys with their values.
  await click(`redis-table-${TRANSFORM}`, 60_000);
  await eventually("the cache's keys", async () => {
    const errs = await driver.findElements(sel("redis-error"));
    if (errs.length) throw new Error(`browsing the cache failed: ${await errs[0].getText()}`);
    return (await driver.findElements(sel("redis-meta"))).length > 0;
  }, 60_000);
  const keysMeta = await text("redis-meta");
  const keysShown = /^([\d,]+) keys of /.exec(keysMeta);
  if (!keysShown || Number(keysShown[1].replace(/,/g, "")) === 0) throw new Error(`the cache shows no keys: ${keysMeta}`);
  const firstKey = await bounded(
    "the first key",
    driver.executeScript("const r = document.querySelector('[data-testid=redis-view] [data-row]'); return r ? r.textContent : '';"),
  );
  if (!firstKey.includes(`${REDIS_PREFIX}${TRANSFORM}:`)) throw new Error(`the first key is not the cache's row: ${firstKey.slice(0, 300)}`);
  const columns = await bounded(
    "the keys' columns",
    driver.executeScript("const g = document.querySelector('[data-testid=redis-grid]'); return g ? g.textContent : '';"),
  );
  if (!columns.includes("order_id") || !columns.includes("category")) throw new Error(`the keys' values are not shown by column: ${columns.slice(0, 300)}`);
  log(`redis: ${keysMeta}`);
  await shot("redis-keys");

  setStep("pipeline: stop");
  await click("nav-pipelines");
  await click("pipeline-stop");
  await eventually("the pipeline stopped", async () => (await text("pipeline-state")) === "stopped", 120_000);
  await shot("pipeline-stopped");

  setStep("pipeline: verify finds a divergence, repair fixes it");
  // The folder changes while the pipeline is stopped: customer 1 renamed.
  const customersCsv = join(STUDIO_DIR, "shop", "customers.csv");
  if (!existsSync(customersCsv)) fail(`no sample customers at ${customersCsv}`);
  const customerLines = readFileSync(customersCsv, "utf8").split("\n");
  const first = customerLines[1].split(",");
  if (first[0] !== "1") fail(`customers.csv does not start with customer 1: ${customerLines[1]}`);
  first[1] = "Renamed Customer";
  customerLines[1] = first.join(",");
  writeFileSync(customersCsv, customerLines.join("\n"));
  await click("pipeline-verify");
  await eventually("the warehouse differs", async () => {
    const errs = await driver.findElements(sel("pipeline-error"));
    if (errs.length) throw new Error(`verify failed: ${await errs[0].getText()}`);
    const badges = await driver.findElements(sel("verify-badge-warehouse"));
    return badges.length > 0 && (await badges[0].getText()).includes("1 row differs");
  }, 300_000);
  const grid = await bounded(
    "the differences",
    driver.executeScript("const g = document.querySelector('[data-testid=verify-grid]'); return g ? g.textContent : '';"),
  );
  if (!grid.includes("Renamed Customer") || !grid.includes('{"customer_id":1}')) throw new Error(`the difference is not listed: ${grid.slice(0, 400)}`);
  await shot("pipeline-differs");
  await click("pipeline-repair");
  await eventually("the warehouse repaired", async () => {
    const errs = await driver.findElements(sel("pipeline-error"));
    if (errs.length) throw new Error(`repair failed: ${await errs[0].getText()}`);
    const done = await driver.findElements(sel("pipeline-repaired"));
    if (!done.length) return false;
    return (await text("verify-badge-warehouse")).includes("in sync");
  }, 300_000);
  log(`repair: ${await text("pipeline-repaired")}`);
  await shot("pipeline-repaired");

  setStep("a file outside the studio's folders is refused");
  await click("nav-files");
  // The app's workspace is E2E_WORKDIR (SYNCLINE_WORKSPACE): a pipeline
  // elsewhere, typed rather than chosen in the native dialog, is refused,
  // also when spelled as a path inside the workspace that leads out of it.
  const outside = mkdtempSync(join(tmpdir(), "syncline-e2e-outside-"));
  process.on("exit", () => rmSync(outside, { recursive: true, force: true }));
  writeFileSync(join(outside, "p.toml"), 'name = "outside"\n');
  for (const path of [join(outside, "p.toml"), `${STUDIO_DIR}/../../${basename(outside)}/p.toml`]) {
    await type("open-path", path);
    await click("open-button");
    await eventually(`opening ${path} is refused`, async () => {
      const error = await text("files-error");
      return error.includes(path) && error.includes("outside the folders Syncline Studio may use");
    });
  }
  await shot("outside-refused");

  setStep("a file chosen with Browse… is allowed, and its folder");
  await click("open-browse");
  answerFileDialog("Open a pipeline file", join(outside, "p.toml"));
  await eventually("the chosen file opened", async () => (await text("open-text")).includes('name = "outside"'));
  await shot("outside-chosen");
  writeFileSync(join(outside, "q.toml"), 'name = "beside"\n');
  await type("open-path", join(outside, "q.toml"));
  await click("open-button");
  await eventually("a file beside the chosen one opened", async () => (await text("open-text")).includes('name = "beside"'));

  setStep("open and export");
  await type("open-path", PIPELINE);
  await click("open-button");
  // The editor still shows the file opened before until this one is read.
  await eventually(
    "the opened file shows the transform",
    async () => (await text("open-text")).includes(`[transforms.${TRANSFORM}]`),
    30_000,
  );
  await type("export-path", EXPORTED);
  await click("export-button");
  await find("export-status", 30_000);
  await shot("export");
}

async function tableFingerprints(database) {
  const instance = await DuckDBInstance.create(database, { access_mode: "READ_ONLY" });
  const conn = await instance.connect();
  const out = {};
  try {
    const tables = (
      await conn.runAndReadAll(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_syncline%' ESCAPE '\\' ORDER BY 1, 2",
      )
    ).getRowObjects();
    for (const { table_schema, table_name } of tables) {
      const cols = (
        await conn.runAndReadAll(
          `SELECT column_name FROM information_schema.columns WHERE table_schema = '${table_schema}' AND table_name = '${table_name}' AND column_name NOT LIKE '\\_syncline%' ESCAPE '\\' ORDER BY ordinal_position`,
        )
      )
        .getRowObjects()
        .map((r) => `"${String(r.column_name).replace(/"/g, '""')}"`);
      const q = `SELECT count(*)::VARCHAR AS n, coalesce(sum(hash(${cols.join(", ")}))::VARCHAR, '0') AS h FROM "${table_schema}"."${table_name}"`;
      const [row] = (await conn.runAndReadAll(q)).getRowObjects();
      out[`${table_schema}.${table_name}`] = { rows: Number(row.n), checksum: String(row.h) };
    }
  } finally {
    conn.closeSync?.();
    instance.closeSync?.();
  }
  return out;
}

async function compare() {
  setStep("exported file unchanged");
  const saved = readFileSync(PIPELINE);
  const exported = readFileSync(EXPORTED);
  if (!saved.equals(exported)) fail(`${EXPORTED} differs from ${PIPELINE}`);

  setStep("syncline run --once of the exported file");
  cpSync(join(STUDIO_DIR, "shop"), join(EXPORT_DIR, "shop"), { recursive: true });
  log(`${SYNCLINE_BIN} run --once ${EXPORTED}`);
  execFileSync(SYNCLINE_BIN, ["run", "--once", EXPORTED], { stdio: "inherit", timeout: 1_200_000 });

  setStep("comparing target tables");
  const a = await tableFingerprints(join(STUDIO_DIR, "shop.duckdb"));
  const b = await tableFingerprints(join(EXPORT_DIR, "shop.duckdb"));
  log(`studio: ${JSON.stringify(a)}`);
  log(`cli:    ${JSON.stringify(b)}`);
  for (const t of ["main.customers", "main.products", "main.orders", `main.${TRANSFORM}`]) {
    if (!a[t]) fail(`the studio's target has no table ${t}`);
    if (a[t].rows === 0) fail(`the studio's ${t} is empty`);
  }
  // The cache holds a key per row of the transform's output, as the warehouse does.
  const cached = redisScan(`${REDIS_PREFIX}${TRANSFORM}:*`).length;
  log(`cache: ${cached} keys for ${TRANSFORM}`);
  if (cached !== b[`main.${TRANSFORM}`]?.rows) fail(`the cache holds ${cached} keys for ${TRANSFORM}, the warehouse ${b[`main.${TRANSFORM}`]?.rows} rows`);
  if (JSON.stringify(a) !== JSON.stringify(b)) fail(`target tables differ:\nstudio ${JSON.stringify(a, null, 1)}\ncli    ${JSON.stringify(b, null, 1)}`);
  log(`the same ${Object.keys(a).length} tables: ${Object.entries(a).map(([t, v]) => `${t} ${v.rows}`).join(", ")}`);
}

const requested = Date.now();
try {
  driver = await new Builder()
    .usingServer(SERVER)
    .withCapabilities({ browserName: "wry", "tauri:options": { application: APP_BINARY } })
    .build();
  const started = Date.now();
  await walk(requested);
  log(`walk done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  if (driver) {
    try {
      await shot(`failure-${step.replace(/[^a-z]+/gi, "-")}`);
    } catch {
      // no screenshot possible
    }
    await bounded("quit", driver.quit(), 20_000).catch(() => undefined);
  }
  fail(`${step}: ${e?.message ?? e}`);
}
await bounded("quit", driver.quit(), 20_000).catch(() => undefined);
// The exported file's run below starts from nothing, the cache included.
log(`removed the studio run's ${redisClear()} Redis keys`);
try {
  await compare();
} catch (e) {
  fail(`${step}: ${e?.message ?? e}`);
}
writeFileSync(join(SCREENSHOT_DIR, "metrics.json"), `${JSON.stringify(metrics, null, 2)}\n`);
console.log("E2E passed");
