import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { kinds, sampleToml } from "../../test/fixtures";
import type { PipelineDraft } from "../../types";

// The UI's boundary with the Tauri shell is backend.ts; the wizard is tested
// against a double of that module.
vi.mock("../../backend", () => ({
  connectorKinds: vi.fn(),
  defaultWorkspaceDir: vi.fn(),
  createSample: vi.fn(),
  testConnection: vi.fn(),
  discover: vi.fn(),
  renderPipeline: vi.fn(),
  validatePipeline: vi.fn(),
  previewTransform: vi.fn(),
  savePipeline: vi.fn(),
  storeSecret: vi.fn(),
  pickFolder: vi.fn(),
  pickSavePath: vi.fn(),
}));

import * as backend from "../../backend";
import { Wizard } from "./Wizard";

const b = vi.mocked(backend);
const RENDERED = 'name = "shop"\n\n[sources.shop]\nkind = "files"\n# rendered by the shell\n';

beforeEach(() => {
  vi.resetAllMocks();
  b.connectorKinds.mockResolvedValue(kinds);
  b.defaultWorkspaceDir.mockResolvedValue("/home/u/Documents/Syncline");
  b.createSample.mockImplementation(async (dir: string) => ({ dir, sourceName: "shop", text: sampleToml }));
  b.renderPipeline.mockResolvedValue({
    text: RENDERED,
    problems: [{ line: 5, column: 1, field: "targets.warehouse.inputs", message: "unknown input `nope`" }],
  });
  b.validatePipeline.mockResolvedValue([]);
  b.testConnection.mockResolvedValue([
    { name: "Folder exists", outcome: "pass", detail: "shop/ holds 14 files", fix: null },
    { name: "Orders key", outcome: "warn", detail: "2 rows share a key", fix: "Add line_no to the key." },
  ]);
  b.discover.mockResolvedValue([
    {
      name: "customers",
      columns: [
        { name: "customer_id", dataType: "BIGINT", key: true, nullable: false },
        { name: "email", dataType: "VARCHAR", key: false, nullable: true },
      ],
      modes: ["cdc", "full"],
      defaultMode: "cdc",
    },
    {
      name: "orders",
      columns: [
        { name: "order_id", dataType: "BIGINT", key: true, nullable: false },
        { name: "amount", dataType: "DECIMAL(12,2)", key: false, nullable: true },
        { name: "status", dataType: "VARCHAR", key: false, nullable: true },
      ],
      modes: ["cdc", "full"],
      defaultMode: "cdc",
    },
  ]);
  b.previewTransform.mockResolvedValue({
    columns: [
      { name: "customer_id", dataType: "BIGINT" },
      { name: "email", dataType: "VARCHAR" },
    ],
    key: ["customer_id"],
    inputRows: 1000,
    outputRows: 2,
    rows: [
      [1, "a@example.com"],
      [2, null],
    ],
    recentChanges: [
      { op: "update", before: null, after: { customer_id: 2, email: "b@example.com" }, output: [{ op: "update", row: { customer_id: 2, email: "b@example.com" } }], error: null },
      { op: "insert", before: null, after: { customer_id: 3, email: 7 }, output: [], error: "Conversion Error: 7 is no email" },
    ],
    error: null,
    elapsedMs: 12,
  });
  b.savePipeline.mockResolvedValue(undefined);
});

const currentStep = () => document.querySelector('[aria-current="step"]')?.textContent?.replace(/^\d+\s*/, "");
const next = async () => {
  await act(async () => {
    fireEvent.click(screen.getByTestId("wizard-next"));
  });
};
const back = async () => {
  await act(async () => {
    fireEvent.click(screen.getByTestId("wizard-back"));
  });
};
const lastDraft = (): PipelineDraft => b.renderPipeline.mock.calls.at(-1)![0];

describe("Wizard", () => {
  it("walks from the sample source to save and run, keeping values on Back", async () => {
    const onRun = vi.fn();
    render(<Wizard onRun={onRun} />);
    await screen.findByTestId("kind-files");
    expect(currentStep()).toBe("Source");
    await waitFor(() => expect((screen.getByTestId("wizard-folder") as HTMLInputElement).value).toBe("/home/u/Documents/Syncline"));

    // Next without a kind stays and says why.
    await next();
    expect(currentStep()).toBe("Source");
    expect(screen.getByTestId("wizard-error").textContent).toMatch(/source kind/);

    fireEvent.click(screen.getByTestId("kind-sample").querySelector("input")!);
    await next();
    expect(b.createSample).toHaveBeenCalledWith("/home/u/Documents/Syncline");
    expect(currentStep()).toBe("Settings");
    expect((screen.getByTestId("source-path") as HTMLInputElement).value).toBe("shop");
    expect((screen.getByTestId("wizard-source-name") as HTMLInputElement).value).toBe("shop");
    fireEvent.change(screen.getByTestId("source-batch_rows"), { target: { value: "500" } });

    // Back to the source step: choices are still there; Next does not write the sample again.
    await back();
    expect(currentStep()).toBe("Source");
    expect((screen.getByTestId("kind-sample").querySelector("input") as HTMLInputElement).checked).toBe(true);
    expect((screen.getByTestId("wizard-name") as HTMLInputElement).value).toBe("shop");
    await next();
    expect(b.createSample).toHaveBeenCalledTimes(1);
    expect((screen.getByTestId("source-batch_rows") as HTMLInputElement).value).toBe("500");

    // A field made invalid blocks Next with its error shown.
    fireEvent.change(screen.getByTestId("source-path"), { target: { value: "" } });
    await next();
    expect(currentStep()).toBe("Settings");
    expect(screen.getByTestId("error-source-path").textContent).toBe("Required.");
    fireEvent.change(screen.getByTestId("source-path"), { target: { value: "shop" } });
    await next();

    expect(currentStep()).toBe("Connection");
    await screen.findByTestId("checks");
    expect(b.testConnection).toHaveBeenCalledWith({ path: "/home/u/Documents/Syncline/shop.toml", text: RENDERED }, "shop");
    expect(screen.getByText("How to fix: Add line_no to the key.")).toBeTruthy();
    expect(screen.getAllByTestId("check-pass")).toHaveLength(1);

    await next();
    expect(currentStep()).toBe("Tables");
    await screen.findByTestId("table-orders");
    fireEvent.click(screen.getByTestId("table-include-orders"));
    fireEvent.change(screen.getByTestId("table-mode-customers"), { target: { value: "full" } });
    // Key columns stay; other columns can be left out of the transform.
    expect((screen.getByTestId("column-customers-customer_id") as HTMLInputElement).disabled).toBe(true);
    await next();

    expect(currentStep()).toBe("Transform");
    expect((screen.getByTestId("transform-name") as HTMLInputElement).value).toBe("customers_view");
    expect((screen.getByTestId("transform-input") as HTMLSelectElement).value).toBe("shop.customers");
    expect((await screen.findByTestId("sql-editor")).textContent).toContain("SELECT customer_id, email");
    await act(async () => {
      fireEvent.click(screen.getByTestId("preview-run"));
    });
    await screen.findByTestId("preview");
    expect(b.previewTransform).toHaveBeenCalledWith(
      { path: "/home/u/Documents/Syncline/shop.toml", text: RENDERED },
      "customers_view",
      "SELECT customer_id, email\nFROM source",
      1000,
      0,
    );
    expect(screen.getByTestId("preview-counts").textContent).toMatch(/1,000 input rows sampled → 2 output rows/);
    expect(screen.getByTestId("preview-schema").textContent).toContain("email");
    expect(screen.getByText("a@example.com")).toBeTruthy();
    // Recent changes show what the target would get, and which would be kept as dead letters.
    expect(screen.getByTestId("preview-changes").textContent).toContain("Dead letter: Conversion Error: 7 is no email");
    await next();

    expect(currentStep()).toBe("Targets");
    const inputs = screen.getByTestId("target-warehouse-input-customers_view") as HTMLInputElement;
    expect(inputs.checked).toBe(true);
    expect((screen.getByTestId("target-warehouse-path") as HTMLInputElement).value).toBe("shop.duckdb");
    // Each target has its own connection test: the target's checks, by name.
    b.testConnection.mockResolvedValueOnce([
      { name: "Database file", outcome: "fail", detail: "shop.duckdb is locked by another process", fix: "Stop the other pipeline." },
    ]);
    await act(async () => fireEvent.click(screen.getByTestId("target-warehouse-test")));
    expect(b.testConnection).toHaveBeenLastCalledWith({ path: "/home/u/Documents/Syncline/shop.toml", text: RENDERED }, "warehouse");
    expect(screen.getByTestId("target-warehouse-check-fail").textContent).toContain("How to fix: Stop the other pipeline.");
    await next();

    expect(currentStep()).toBe("Review");
    await screen.findByTestId("review-toml");
    // The review shows exactly what the shell rendered, with its problems.
    expect(screen.getByTestId("review-toml").textContent).toContain("# rendered by the shell");
    expect(screen.getByTestId("review-problems").textContent).toContain("unknown input `nope`");
    const draft = lastDraft();
    expect(draft.sources.shop).toMatchObject({ kind: "files", path: "shop", batch_rows: 500 });
    expect(draft.sources.shop.tables).toEqual([
      { name: "customers", pattern: "customers.csv", key: ["customer_id"], mode: "full" },
    ]);
    expect(draft.transforms).toEqual({ customers_view: { input: "shop.customers", sql: "SELECT customer_id, email\nFROM source" } });
    expect(draft.targets.warehouse.inputs).toEqual(["shop", "customers_view"]);

    // Back from Review to Tables and forward again keeps every choice.
    await back();
    await back();
    await back();
    expect(currentStep()).toBe("Tables");
    expect((screen.getByTestId("table-include-orders") as HTMLInputElement).checked).toBe(false);
    expect((screen.getByTestId("table-mode-customers") as HTMLSelectElement).value).toBe("full");
    expect(b.discover).toHaveBeenCalledTimes(1);
    await next();
    await next();
    await next();
    await next();
    expect(currentStep()).toBe("Save & run");
    expect((screen.getByTestId("save-path") as HTMLInputElement).value).toBe("/home/u/Documents/Syncline/shop.toml");
    expect((screen.getByTestId("run-button") as HTMLButtonElement).disabled).toBe(true);
    await act(async () => {
      fireEvent.click(screen.getByTestId("save-button"));
    });
    expect(b.savePipeline).toHaveBeenCalledWith({ path: "/home/u/Documents/Syncline/shop.toml", text: RENDERED });
    expect(screen.getByTestId("save-status").textContent).toContain("shop.toml");
    fireEvent.click(screen.getByTestId("run-button"));
    expect(onRun).toHaveBeenCalledWith("/home/u/Documents/Syncline/shop.toml");
  });

  it("shows a SQL error from the preview inline, at its line and column", async () => {
    b.previewTransform.mockResolvedValue({
      columns: [],
      key: [],
      inputRows: 1000,
      outputRows: 0,
      rows: [],
      recentChanges: [],
      error: { message: 'Referenced column "emial" not found', line: 1, column: 20 },
      elapsedMs: 3,
    });
    render(<Wizard onRun={() => undefined} />);
    await screen.findByTestId("kind-files");
    fireEvent.click(screen.getByTestId("kind-sample").querySelector("input")!);
    await next();
    await next();
    await screen.findByTestId("checks");
    await next();
    await screen.findByTestId("table-orders");
    await next();
    await act(async () => {
      fireEvent.click(screen.getByTestId("preview-run"));
    });
    const error = await screen.findByTestId("preview-error");
    expect(error.textContent).toBe('Line 1, column 20: Referenced column "emial" not found');
    expect(screen.queryByTestId("preview-grid")).toBeNull();
  });

  it("says why a folder chosen in the dialog was refused, and keeps the folder it had", async () => {
    b.pickFolder.mockRejectedValueOnce({
      code: "outside_scope",
      message: "/home/u: the root or home folder gives the studio every file",
    });
    render(<Wizard onRun={() => undefined} />);
    await waitFor(() => expect((screen.getByTestId("wizard-folder") as HTMLInputElement).value).toBe("/home/u/Documents/Syncline"));
    fireEvent.click(screen.getByTestId("wizard-folder-browse"));
    expect((await screen.findByTestId("wizard-folder-error")).textContent).toMatch(/home folder gives the studio every file/);
    expect((screen.getByTestId("wizard-folder") as HTMLInputElement).value).toBe("/home/u/Documents/Syncline");

    b.pickFolder.mockResolvedValueOnce("/home/u/projects/shop");
    fireEvent.click(screen.getByTestId("wizard-folder-browse"));
    await waitFor(() => expect((screen.getByTestId("wizard-folder") as HTMLInputElement).value).toBe("/home/u/projects/shop"));
    expect(screen.queryByTestId("wizard-folder-error")).toBeNull();
  });

  it("draws the settings form of a connector kind from its schema", async () => {
    render(<Wizard onRun={() => undefined} />);
    await screen.findByTestId("kind-postgres");
    fireEvent.click(screen.getByTestId("kind-postgres").querySelector("input")!);
    await next();
    expect(b.createSample).not.toHaveBeenCalled();
    expect(currentStep()).toBe("Settings");
    expect(screen.getByTestId("help-source-database").textContent).toBe("Database name.");
    await next();
    expect(currentStep()).toBe("Settings");
    expect(screen.getByTestId("error-source-database").textContent).toBe("Required.");
    fireEvent.change(screen.getByTestId("source-database"), { target: { value: "app" } });
    await next();
    expect(currentStep()).toBe("Connection");
    expect(lastDraft()).toEqual({
      name: "shop",
      sources: { postgres: { kind: "postgres", database: "app" } },
      targets: { warehouse: { kind: "duckdb", path: "shop.duckdb", inputs: ["postgres"] } },
    });
  });
});
