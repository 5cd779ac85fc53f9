import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

// The screens are tested against a double of backend.ts, the UI's boundary.
vi.mock("../backend", () => ({
  openPipeline: vi.fn(),
  savePipeline: vi.fn(),
  pickPipelineFile: vi.fn(),
  pickSavePath: vi.fn(),
  pickDatabase: vi.fn(),
  listTables: vi.fn(),
  runQuery: vi.fn(),
  searchIndex: vi.fn(),
  redisKeys: vi.fn(),
  dlqList: vi.fn(),
  dlqReplay: vi.fn(),
  dlqDiscard: vi.fn(),
}));

import * as backend from "../backend";
import type { KeptRow } from "../types";
import { DataView } from "./DataView";
import { DeadLetters } from "./DeadLetters";
import { OpenExport } from "./OpenExport";

const b = vi.mocked(backend);
const TEXT = '# hand-written\nname = "shop"  # keep this comment\n';

beforeEach(() => {
  vi.resetAllMocks();
  b.openPipeline.mockImplementation(async (path: string) => ({
    path,
    text: TEXT,
    draft: { name: "shop", sources: {}, targets: {} },
  }));
  b.savePipeline.mockResolvedValue(undefined);
});

describe("Open / Export", () => {
  it("saves the opened text byte for byte to the export path", async () => {
    render(<OpenExport onShowPipeline={() => undefined} />);
    fireEvent.change(screen.getByTestId("open-path"), { target: { value: "/w/shop.toml" } });
    await act(async () => fireEvent.click(screen.getByTestId("open-button")));
    expect(screen.getByTestId("open-text").textContent).toContain("# keep this comment");
    fireEvent.change(screen.getByTestId("export-path"), { target: { value: "/x/shop.toml" } });
    await act(async () => fireEvent.click(screen.getByTestId("export-button")));
    expect(b.savePipeline).toHaveBeenCalledWith({ path: "/x/shop.toml", text: TEXT });
    expect(screen.getByTestId("export-status").textContent).toBe("Saved to /x/shop.toml");
  });

  it("shows the shell's error message when a file does not open", async () => {
    b.openPipeline.mockRejectedValue({ code: "config", message: "line 3, field `sources`: missing" });
    render(<OpenExport onShowPipeline={() => undefined} />);
    fireEvent.change(screen.getByTestId("open-path"), { target: { value: "/w/bad.toml" } });
    await act(async () => fireEvent.click(screen.getByTestId("open-button")));
    expect(screen.getByTestId("files-error").textContent).toBe("line 3, field `sources`: missing");
  });
});

describe("Data view", () => {
  it("lists tables, browses one and shows SQL errors", async () => {
    b.listTables.mockResolvedValue([
      { schema: "main", name: "orders", rows: 120000, columns: [{ name: "order_id", dataType: "BIGINT" }] },
    ]);
    b.runQuery.mockResolvedValue({
      columns: [{ name: "order_id", dataType: "BIGINT" }],
      rows: Array.from({ length: 120_000 }, (_, i) => [i + 1]),
      truncated: true,
      elapsedMs: 40,
    });
    render(<DataView database="/w/shop.duckdb" onDatabase={() => undefined} />);
    const table = await screen.findByTestId("data-table-orders");
    expect(screen.getByTestId("data-tables").textContent).toContain("120,000");
    await act(async () => fireEvent.click(table));
    expect(b.runQuery).toHaveBeenCalledWith("/w/shop.duckdb", 'SELECT * FROM "main"."orders"', 100000);
    expect(screen.getByTestId("data-result-meta").textContent).toBe("120,000 rows (limit reached) in 40 ms");
    expect(document.querySelectorAll('[data-testid="data-grid"] [data-row]').length).toBeLessThan(60);

    b.runQuery.mockRejectedValue({ code: "sql", message: 'Catalog Error: Table "nope" does not exist' });
    await act(async () => fireEvent.click(screen.getByTestId("data-run")));
    expect(screen.getByTestId("data-error").textContent).toBe('Catalog Error: Table "nope" does not exist');
  });
});

describe("Search", () => {
  it("searches the index target and shows the matches as a grid", async () => {
    b.listTables.mockResolvedValue([]);
    b.searchIndex.mockResolvedValue({
      columns: [
        { name: "score", dataType: "DOUBLE" },
        { name: "table", dataType: "VARCHAR" },
        { name: "key", dataType: "VARCHAR" },
        { name: "matches", dataType: "VARCHAR" },
        { name: "title", dataType: "JSON" },
      ],
      rows: [[2.31, "products", "42", "title: Red **shoe**", "Red shoe"]],
      total: 17,
      elapsedMs: 3,
    });
    const search = { pipeline: { path: "/w/shop.toml", text: TEXT }, target: "index" };
    render(<DataView database="" onDatabase={() => undefined} search={search} />);
    fireEvent.change(screen.getByTestId("search-query"), { target: { value: "title:shoe" } });
    await act(async () => fireEvent.click(screen.getByTestId("search-run")));
    expect(b.searchIndex).toHaveBeenCalledWith({ path: "/w/shop.toml", text: TEXT }, "index", "title:shoe", 100);
    expect(screen.getByTestId("search-meta").textContent).toBe("1 of 17 matching documents in 3 ms");
    expect(screen.getByTestId("search-grid").textContent).toContain("Red **shoe**");

    b.searchIndex.mockRejectedValue({ code: "config", message: 'search query: "title:(": Syntax Error' });
    await act(async () => fireEvent.click(screen.getByTestId("search-run")));
    expect(screen.getByTestId("search-error").textContent).toBe('search query: "title:(": Syntax Error');
  });

  it("runs a query handed over from the graph's search box at once", async () => {
    b.listTables.mockResolvedValue([]);
    b.searchIndex.mockResolvedValue({
      columns: [{ name: "key", dataType: "VARCHAR" }],
      rows: [["7"], ["9"]],
      total: 2,
      elapsedMs: 1,
    });
    const search = { pipeline: { path: "/w/shop.toml", text: TEXT }, target: "index", query: "category:garden" };
    await act(async () => {
      render(<DataView database="" onDatabase={() => undefined} search={search} />);
    });
    expect(b.searchIndex).toHaveBeenCalledTimes(1);
    expect(b.searchIndex).toHaveBeenCalledWith({ path: "/w/shop.toml", text: TEXT }, "index", "category:garden", 100);
    expect((screen.getByTestId("search-query") as HTMLInputElement).value).toBe("category:garden");
    expect(screen.getByTestId("search-meta").textContent).toBe("2 of 2 matching documents in 1 ms");
  });
});

describe("Redis keys", () => {
  it("lists the target's tables by key template and shows a table's keys", async () => {
    b.listTables.mockResolvedValue([]);
    const page = (table: string) => ({
      tables: [
        { table: "customers", template: "customer:{id}", keys: 50000 },
        { table: "products", template: "product:{id}", keys: 2000 },
      ],
      table,
      columns: [
        { name: "key", dataType: "VARCHAR" },
        { name: "name", dataType: "JSON" },
      ],
      rows: [[`${table.slice(0, -1)}:1`, "first"]],
      elapsedMs: 2,
    });
    b.redisKeys.mockImplementation(async (_p, _t, table) => page(table ?? "customers"));
    const redis = { pipeline: { path: "/w/shop.toml", text: TEXT }, target: "cache" };
    render(<DataView database="" onDatabase={() => undefined} redis={redis} />);
    await screen.findByTestId("redis-table-products");
    expect(b.redisKeys).toHaveBeenCalledWith({ path: "/w/shop.toml", text: TEXT }, "cache", null, 1000);
    expect(screen.getByTestId("redis-tables").textContent).toContain("customer:{id}");
    expect(screen.getByTestId("redis-tables").textContent).toContain("50,000");
    expect(screen.getByTestId("redis-grid").textContent).toContain("customer:1");
    await act(async () => fireEvent.click(screen.getByTestId("redis-table-products")));
    expect(b.redisKeys).toHaveBeenLastCalledWith({ path: "/w/shop.toml", text: TEXT }, "cache", "products", 1000);
    expect(screen.getByTestId("redis-meta").textContent).toBe("1 keys of products in 2 ms");
    expect(screen.getByTestId("redis-grid").textContent).toContain("product:1");
  });
});

describe("Dead letters", () => {
  it("lists kept rows per target, discards the chosen ones and replays", async () => {
    const row = (id: number, kept: KeptRow["kept"]): KeptRow => ({
      id,
      source: "shop",
      table: "orders",
      stage: "read",
      origin: "orders/2025-03.csv",
      line: 8,
      raw: "7,1,oops",
      reason: "expected 7 fields, found 3",
      seq: 3,
      recordedAt: "2026-11-25T15:00:00Z",
      kept,
    });
    b.dlqList.mockResolvedValue([{ target: "warehouse", rows: [row(1, null), row(2, {} as KeptRow["kept"])] }]);
    b.dlqReplay.mockResolvedValue([{ target: "warehouse", replayed: [2], superseded: [], failed: [], notReplayable: [1] }]);
    b.dlqDiscard.mockResolvedValue(undefined);
    render(<DeadLetters path="/w/shop.toml" onPath={() => undefined} />);
    await screen.findByTestId("dlq-row-1");
    expect(b.dlqList).toHaveBeenCalledWith({ path: "/w/shop.toml", text: TEXT });
    expect(screen.getByTestId("dlq-row-1").textContent).toContain("orders/2025-03.csv:8");
    expect(screen.getByTestId("dlq-row-1").textContent).toContain("not replayable");

    fireEvent.click(screen.getByLabelText("Select 1"));
    await act(async () => fireEvent.click(screen.getByTestId("dlq-discard-warehouse")));
    expect(b.dlqDiscard).toHaveBeenCalledWith({ path: "/w/shop.toml", text: TEXT }, "warehouse", [1]);

    await act(async () => fireEvent.click(screen.getByTestId("dlq-replay-warehouse")));
    await waitFor(() => expect(screen.getByTestId("dlq-report").textContent).toContain("1 replayed"));
    expect(b.dlqReplay).toHaveBeenCalledWith({ path: "/w/shop.toml", text: TEXT }, "warehouse");
  });
});
