import { fireEvent, render, screen } from "@testing-library/react";
import { useState } from "react";
import { describe, expect, it } from "vitest";
import { validate } from "../schema";
import { filesSchema, pgSchema } from "../test/fixtures";
import type { JsonSchema } from "../types";
import { SchemaForm } from "./SchemaForm";

function Harness({ schema, initial = {}, showAll }: { schema: JsonSchema; initial?: Record<string, unknown>; showAll?: boolean }) {
  const [value, setValue] = useState<Record<string, unknown>>(initial);
  return (
    <>
      <SchemaForm schema={schema} value={value} onChange={setValue} hide={["kind"]} showAll={showAll} testid="f" />
      <output data-testid="value">{JSON.stringify(value)}</output>
    </>
  );
}

const value = () => JSON.parse(screen.getByTestId("value").textContent ?? "{}");

describe("SchemaForm", () => {
  it("marks required fields and reports them missing once errors are shown", () => {
    render(<Harness schema={pgSchema} showAll />);
    const database = screen.getByTestId("f-database");
    expect(database.getAttribute("aria-required")).toBe("true");
    expect(screen.getByTestId("f-host").getAttribute("aria-required")).toBeNull();
    expect(screen.getByTestId("error-f-database").textContent).toBe("Required.");
    expect(screen.queryByTestId("error-f-host")).toBeNull();
    // The const `kind` is set elsewhere and never drawn.
    expect(screen.queryByTestId("f-kind")).toBeNull();
  });

  it("hides errors of untouched fields until asked", () => {
    render(<Harness schema={pgSchema} />);
    expect(screen.queryByTestId("error-f-database")).toBeNull();
  });

  it("validates as the user types", () => {
    render(<Harness schema={filesSchema} initial={{ path: "shop", tables: [{ name: "t", pattern: "*.csv" }] }} />);
    const batch = screen.getByTestId("f-batch_rows");
    fireEvent.change(batch, { target: { value: "0" } });
    expect(screen.getByTestId("error-f-batch_rows").textContent).toBe("At least 1.");
    fireEvent.change(batch, { target: { value: "2.5" } });
    expect(screen.getByTestId("error-f-batch_rows").textContent).toBe("Enter a whole number.");
    fireEvent.change(batch, { target: { value: "abc" } });
    expect(screen.getByTestId("error-f-batch_rows").textContent).toBe("Enter a number.");
    fireEvent.change(batch, { target: { value: "500" } });
    expect(screen.queryByTestId("error-f-batch_rows")).toBeNull();
    expect(value().batch_rows).toBe(500);

    const path = screen.getByTestId("f-path");
    fireEvent.change(path, { target: { value: "" } });
    expect(screen.getByTestId("error-f-path").textContent).toBe("Required.");
    expect(value().path).toBeUndefined();
    fireEvent.change(path, { target: { value: "data" } });
    expect(screen.queryByTestId("error-f-path")).toBeNull();
  });

  it("checks secret references and nested list items", () => {
    render(<Harness schema={pgSchema} initial={{ database: "app" }} />);
    const password = screen.getByTestId("f-password");
    fireEvent.change(password, { target: { value: "hunter2" } });
    expect(screen.getByTestId("error-f-password").textContent).toMatch(/\$\{env:NAME\}/);
    fireEvent.change(password, { target: { value: "${env:APP_PG_PASSWORD}" } });
    expect(screen.queryByTestId("error-f-password")).toBeNull();

    const errors = validate(filesSchema, { kind: "files", path: "x", tables: [{ name: "a" }] });
    expect(errors).toEqual({ "tables.0.pattern": "Required." });
    expect(validate(filesSchema, { kind: "files", path: "x", tables: [] })).toEqual({ tables: "Add at least one." });
  });

  it("shows each field's description as help text", () => {
    render(<Harness schema={pgSchema} />);
    expect(screen.getByTestId("help-f-database").textContent).toBe("Database name.");
    expect(screen.getByTestId("help-f-host").textContent).toBe("Host name or address.");
    const input = screen.getByTestId("f-database");
    const helpId = screen.getByTestId("help-f-database").id;
    expect(input.getAttribute("aria-describedby")).toContain(helpId);
    // Defaults show as placeholders and are not written into the value.
    expect((screen.getByTestId("f-host") as HTMLInputElement).placeholder).toBe("127.0.0.1");
    expect(value()).toEqual({});
  });

  it("edits enums, booleans, nested objects and lists of objects", () => {
    render(<Harness schema={filesSchema} initial={{ path: "shop", tables: [{ name: "orders", pattern: "orders/*.csv" }] }} />);
    fireEvent.change(screen.getByTestId("f-tables.0.mode"), { target: { value: "full" } });
    fireEvent.change(screen.getByTestId("f-tables.0.key"), { target: { value: "order_id, line" } });
    fireEvent.click(screen.getByTestId("f-tables-add"));
    fireEvent.change(screen.getByTestId("f-tables.1.name"), { target: { value: "customers" } });
    expect(value().tables).toEqual([
      { name: "orders", pattern: "orders/*.csv", mode: "full", key: ["order_id", "line"] },
      { name: "customers" },
    ]);
    // A new item's required field complains once touched.
    expect(screen.queryByTestId("error-f-tables.1.pattern")).toBeNull();
    fireEvent.change(screen.getByTestId("f-tables.1.pattern"), { target: { value: "c" } });
    fireEvent.change(screen.getByTestId("f-tables.1.pattern"), { target: { value: "" } });
    expect(screen.getByTestId("error-f-tables.1.pattern").textContent).toBe("Required.");
    fireEvent.click(screen.getByTestId("f-tables-remove-1"));

    render(<Harness schema={pgSchema} />);
    fireEvent.click(screen.getByTestId("f-follow"));
    fireEvent.change(screen.getByTestId("f-sslmode"), { target: { value: "require" } });
    fireEvent.change(screen.getByTestId("f-options.application_name"), { target: { value: "studio" } });
    const all = screen.getAllByTestId("value");
    expect(JSON.parse(all[1].textContent!)).toEqual({ follow: true, sslmode: "require", options: { application_name: "studio" } });
  });
});
