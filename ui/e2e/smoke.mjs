// Smoke test of the desktop chain (Xvfb, tauri-driver, WebKitWebDriver, the
// app with its UI embedded): opens the app, waits for the root element to
// be rendered and enabled, saves a screenshot, and reports how long that
// took from session creation (which launches the app).
//
// Env: APP_BINARY, SCREENSHOT_DIR; WEBDRIVER_URL (default http://127.0.0.1:4444).
import { mkdirSync, writeFileSync } from "node:fs";
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
  const png = await driver.takeScreenshot();
  writeFileSync(join(SCREENSHOT_DIR, "smoke-first-screen.png"), png, "base64");
  console.log(
    `smoke: first screen after ${ready - started} ms (session ${session - started} ms); title "${await driver.getTitle()}"`,
  );
} finally {
  await driver.quit();
}
