// The studio in a plain browser over Tauri's IPC mock, with made-up data:
// for looking at layouts while developing (`npx vite`, then open
// /dev/demo.html). Not part of the build.
import { mockIPC } from "@tauri-apps/api/mocks";
import { stringify } from "smol-toml";
import { createRoot } from "react-dom/client";
import { App } from "../src/App";
import { kinds, sampleToml } from "../src/test/fixtures";
import type { PipelineStatus } from "../src/types";
import "../src/styles.css";

const statuses = ["placed", "paid", "shipped", "delivered", "returned"];
const categories = ["books", "garden", "kitchen", "toys", "audio", "outdoor"];
const orders = (n: number) =>
  Array.from({ length: n }, (_, i) => [i + 1, (i * 7919) % 50000, 1 + (i % 4), `${(i * 37) % 900}.${String(i % 100).padStart(2, "0")}`, statuses[i % 5], i % 11 === 0 ? null : categories[i % 6]]);
const orderCols = [
  { name: "order_id", dataType: "BIGINT" },
  { name: "customer_id", dataType: "BIGINT" },
  { name: "quantity", dataType: "BIGINT" },
  { name: "amount", dataType: "DECIMAL(12,2)" },
  { name: "status", dataType: "VARCHAR" },
  { name: "category", dataType: "VARCHAR" },
];

let files: Record<string, string> = {};
let started = 0;
let stopped = false;

function status(): PipelineStatus {
  const t = (Date.now() - started) / 1000;
  const done = (total: number, rate: number) => Math.min(total, Math.round(t * rate));
  const table = (total: number, rate: number) => {
    const d = done(total, rate);
    return {
      phase: d < total ? "snapshot" : "streaming",
      snapshotTotal: total,
      snapshotDone: d,
      inserts: d,
      updates: Math.round(t * 3),
      deletes: 0,
      deadLetters: total === 300000 ? Math.min(11, Math.round(t)) : 0,
      rowsPerSec: d < total ? rate * (0.8 + Math.random() * 0.4) : Math.random() * 20,
      lagSeconds: d < total ? null : 0.2 + Math.random(),
    } as const;
  };
  return {
    pipeline: "shop",
    state: stopped ? "stopped" : "running",
    tables: { "shop.customers": table(50000, 40000), "shop.orders": table(300000, 60000), "shop.products": table(2000, 20000) },
    positions: {},
    targets: { warehouse: { committedSeq: { shop: Math.round(t * 4) }, positions: {}, lagSeconds: 0.3, committedAt: new Date().toISOString() } },
    retainedBytes: {},
    errors: t > 3 ? ["shop.orders: orders/2025-03.csv line 8: expected 7 fields, found 3"] : [],
    updatedAt: new Date().toISOString(),
  };
}

mockIPC((cmd, args) => {
  const a = (args ?? {}) as Record<string, any>;
  switch (cmd) {
    case "connector_kinds":
      return kinds;
    case "plugin:path|resolve_directory":
      return "/home/ada/Documents";
    case "plugin:path|join":
      return (a.paths as string[]).join("/");
    case "create_sample":
      return { dir: a.dir, sourceName: "shop", text: sampleToml };
    case "test_connection":
      return [
        { name: "Folder", outcome: "pass", detail: "shop/ exists and is readable", fix: null },
        { name: "Table customers", outcome: "pass", detail: "customers.csv: 1 file, 50,000 rows", fix: null },
        { name: "Table orders", outcome: "warn", detail: "orders/*.csv: 12 files; 24 rows do not parse", fix: "They go to the dead-letter queue; fix the files to load them." },
      ];
    case "discover":
      return [
        { name: "customers", columns: [{ name: "customer_id", dataType: "BIGINT", key: true, nullable: false }, { name: "name", dataType: "VARCHAR", key: false, nullable: true }, { name: "email", dataType: "VARCHAR", key: false, nullable: true }, { name: "country", dataType: "VARCHAR", key: false, nullable: true }], modes: ["cdc", "full"], defaultMode: "cdc" },
        { name: "products", columns: [{ name: "product_id", dataType: "BIGINT", key: true, nullable: false }, { name: "category", dataType: "VARCHAR", key: false, nullable: true }, { name: "price", dataType: "VARCHAR", key: false, nullable: true }], modes: ["cdc", "full"], defaultMode: "cdc" },
        { name: "orders", columns: orderCols.slice(0, 5).map((c, i) => ({ ...c, key: i === 0, nullable: i !== 0 })).concat([{ name: "product_id", dataType: "BIGINT", key: false, nullable: true }]), modes: ["cdc", "full"], defaultMode: "cdc" },
      ];
    case "render_pipeline":
      return { text: stringify(a.draft), problems: [] };
    case "validate_pipeline":
      return [];
    case "preview_transform":
      if (/emial/.test(a.sql)) return { columns: [], key: [], inputRows: 1000, outputRows: 0, rows: [], recentChanges: [], error: { message: 'Referenced column "emial" not found in FROM clause!', line: 1, column: 8 }, elapsedMs: 4 };
      return { columns: orderCols, key: ["order_id"], inputRows: a.limit, outputRows: Math.round(a.limit * 0.8), rows: orders(Math.round(a.limit * 0.8)), recentChanges: [], error: null, elapsedMs: 38 };
    case "save_pipeline":
      files[a.path] = a.text;
      return null;
    case "open_pipeline": {
      const text = files[a.path] ?? sampleToml;
      return { path: a.path, text, draft: { name: "shop", sources: { shop: { kind: "files", path: "shop" } }, transforms: { open_orders: { input: "shop.orders", sql: "SELECT 1" } }, targets: { warehouse: { kind: "duckdb", path: "shop.duckdb", inputs: ["shop", "open_orders"] } } } };
    }
    case "start_pipeline":
    case "watch_pipeline":
    case "resume_pipeline": {
      if (!started) started = Date.now();
      stopped = false;
      const ch = a.onStatus;
      if (ch) {
        const timer = setInterval(() => {
          ch.onmessage?.(status());
          if (stopped) clearInterval(timer);
        }, 500);
      }
      return null;
    }
    case "stop_pipeline":
    case "pause_pipeline":
      stopped = true;
      return null;
    case "running_pipelines":
      return [];
    case "list_tables":
      return [
        { schema: "main", name: "customers", rows: 50000, columns: [] },
        { schema: "main", name: "orders", rows: 299976, columns: [] },
        { schema: "main", name: "open_orders", rows: 239980, columns: orderCols },
        { schema: "main", name: "products", rows: 2000, columns: [] },
      ];
    case "run_query":
      if (/group by/i.test(a.sql))
        return {
          columns: [{ name: "category", dataType: "VARCHAR" }, { name: "orders", dataType: "BIGINT" }, { name: "revenue", dataType: "DECIMAL(38,2)" }],
          rows: categories.map((c, i) => [c, 40000 - i * 713, `${(9123456.78 - i * 100000).toFixed(2)}`]),
          truncated: false,
          elapsedMs: 18,
        };
      return { columns: orderCols, rows: orders(Math.min(a.limit, 120000)), truncated: true, elapsedMs: 210 };
    case "dlq_list":
      return [{ target: "warehouse", rows: [
        { id: 1, source: "shop", table: "orders", stage: "source", origin: "orders/2025-03.csv", line: 8, raw: "7,31337,oops", reason: "expected 7 fields, found 3", seq: 3, recordedAt: "2026-11-25T15:00:00Z", kept: null },
        { id: 2, source: "shop", table: "open_orders", stage: "transform", origin: "open_orders", line: null, raw: '{"order_id":175011,"amount":"twelve euros"}', reason: "Conversion Error: Could not convert string 'twelve euros' to DECIMAL(12,2)", seq: 7, recordedAt: "2026-11-25T15:00:01Z", kept: {} },
      ] }];
    default:
      return null;
  }
});

createRoot(document.getElementById("root")!).render(<App />);
