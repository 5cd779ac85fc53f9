import { describe, expect, it } from "vitest";
import { summarize } from "../runs";
import type { PipelineStatus, TableStatus } from "../types";
import { graphOf, targetProgress, verdictText } from "./PipelineGraph";

describe("pipeline graph", () => {
  it("links sources to transforms and targets by their inputs", () => {
    const { nodes, edges } = graphOf({
      name: "shop",
      sources: { shop: { kind: "files" } },
      transforms: { open_orders: { input: "shop.orders", sql: "SELECT * FROM source" } },
      targets: { warehouse: { kind: "duckdb", inputs: ["shop.customers", "open_orders"] } },
    });
    expect(nodes.map((n) => n.id)).toEqual(["source:shop", "transform:open_orders", "target:warehouse"]);
    expect(edges.map((e) => [e.source, e.target, e.label])).toEqual([
      ["source:shop", "transform:open_orders", "orders"],
      ["source:shop", "target:warehouse", "customers"],
      ["transform:open_orders", "target:warehouse", undefined],
    ]);
  });
});

describe("target progress", () => {
  it("labels each target with its own lag and last committed batch", () => {
    const status: PipelineStatus = {
      pipeline: "shop",
      state: "running",
      tables: {},
      positions: {},
      targets: {
        cache: { committedSeq: { pg: 41, files: 7 }, positions: {}, lagSeconds: 0.25, committedAt: null },
        index: { committedSeq: { pg: 38 }, positions: {}, lagSeconds: null, committedAt: null },
      },
      retainedBytes: {},
      errors: [],
      updatedAt: null,
    };
    expect(targetProgress(status, "cache")).toBe("lag 250 ms · batch 41");
    expect(targetProgress(status, "index")).toBe("lag — · batch 38");
    expect(targetProgress(status, "warehouse")).toBeNull();
    const { nodes } = graphOf(
      { name: "shop", sources: { pg: { kind: "postgres" } }, targets: { cache: { kind: "redis", inputs: ["pg"] } } },
      status,
    );
    expect(nodes[1].data.label).toBe("cache (redis)\nlag 250 ms · batch 41");
    expect(nodes[1].height).toBe(56);
    // A search index's node holds a search box; other targets do not.
    const graph = graphOf(
      { name: "shop", sources: { pg: { kind: "postgres" } }, targets: { cache: { kind: "redis", inputs: ["pg"] }, index: { kind: "search", inputs: ["pg"] } } },
      status,
    );
    expect(graph.nodes.map((n) => [n.id, n.type, n.height])).toEqual([
      ["source:pg", "input", 40],
      ["target:cache", "output", 56],
      ["target:index", "search", 96],
    ]);
    expect(graph.nodes[2].data.target).toBe("index");
  });

  it("shows each target's last verification on its node", () => {
    const at = "2026-12-07T14:02:00Z";
    const differs = verdictText({ target: "cache", state: "differs", differing: 12, detail: "" }, at, true);
    expect(differs).toMatch(/^\d\d:\d\d · 12 rows differ$/);
    expect(verdictText({ target: "cache", state: "differs", differing: 12, detail: "" }, at)).toMatch(/^verified .+: 12 rows differ$/);
    expect(verdictText({ target: "cache", state: "differs", differing: 1, detail: "" }, at)).toMatch(/: 1 row differs$/);
    expect(verdictText({ target: "w", state: "in_sync", differing: 0, detail: "" }, at)).toMatch(/: in sync$/);
    expect(verdictText({ target: "w", state: "skipped", differing: 0, detail: "" }, at)).toBe("not verified");
    const { nodes } = graphOf(
      { name: "shop", sources: { pg: { kind: "postgres" } }, targets: { cache: { kind: "redis", inputs: ["pg"] } } },
      null,
      { cache: differs },
    );
    expect(nodes[1].data.label).toBe(`cache (redis)\n${differs}`);
    expect(nodes[1].height).toBe(56);
  });
});

describe("status summary", () => {
  const table = (rowsPerSec: number, lagSeconds: number | null): TableStatus => ({
    phase: "streaming",
    snapshotTotal: null,
    snapshotDone: 0,
    inserts: 0,
    updates: 0,
    deletes: 0,
    deadLetters: 0,
    rowsPerSec,
    lagSeconds,
  });
  it("adds throughput over tables and keeps the worst lag", () => {
    const status: PipelineStatus = {
      pipeline: "shop",
      state: "running",
      tables: { a: table(100, 0.5), b: table(50, 2), c: table(1, null) },
      positions: {},
      targets: {},
      retainedBytes: {},
      errors: [],
      updatedAt: "2026-11-25T15:00:00Z",
    };
    expect(summarize(status)).toEqual({ t: Date.parse("2026-11-25T15:00:00Z") / 1000, throughput: 151, lag: 2 });
    expect(summarize({ ...status, tables: { c: table(0, null) } }).lag).toBeNull();
  });
});
