import { Builder, By, until } from "selenium-webdriver";
const d = await new Builder().usingServer("http://127.0.0.1:4545").withCapabilities({ browserName: "wry", "tauri:options": { application: "/tmp/e2e/syncline-desktop" } }).build();
const step = async (name, f) => { const t = Date.now(); console.log(">", name); const r = await f(); console.log("<", name, Date.now() - t, "ms", typeof r === "string" ? r.slice(0, 80) : JSON.stringify(r)?.slice(0, 80)); return r; };
const race = (p) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error("timeout 15s")), 15000))]);
const js = (s, ...a) => race(d.executeScript(s, ...a));
try {
  await d.sleep(2000);
  await step("shot 0", async () => (await race(d.takeScreenshot())).length);
  await step("dom change", () => js("document.querySelector('h1').textContent = 'Changed'; return 1"));
  await d.sleep(500);
  await step("shot 0b", async () => (await race(d.takeScreenshot())).length);
  await step("folder", () => js("const el = document.querySelector('[data-testid=wizard-folder]'); Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, '/tmp/e2e/probe2'); el.dispatchEvent(new Event('input', {bubbles: true})); return el.value"));
  await step("shot 0c", async () => (await race(d.takeScreenshot())).length);
  await step("radio", () => js("document.querySelector('[data-testid=kind-sample] input').click(); return 1"));
  await d.sleep(3000);
  await step("shot 1", async () => (await race(d.takeScreenshot())).length);
  await step("next", () => js("document.querySelector('[data-testid=wizard-next]').click(); return 1"));
  await d.sleep(3000);
  await step("shot 2", async () => (await race(d.takeScreenshot())).length);
  await step("next", () => js("document.querySelector('[data-testid=wizard-next]').click(); return 1"));
  await d.sleep(5000);
  await step("step", () => js("return document.querySelector('[aria-current=step]').textContent"));
  await step("shot 3", async () => (await race(d.takeScreenshot())).length);
} catch (e) { console.log("ERR", e.message); } finally {
  await race(d.quit()).catch(() => console.log("quit hung"));
}
