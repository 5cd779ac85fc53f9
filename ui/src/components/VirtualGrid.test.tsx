import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ROW_HEIGHT, VirtualGrid, visibleRange } from "./VirtualGrid";

const columns = [
  { name: "id", dataType: "BIGINT" },
  { name: "name", dataType: "VARCHAR" },
  { name: "note", dataType: "VARCHAR" },
];
const rows: unknown[][] = Array.from({ length: 100_000 }, (_, i) => [i, `row ${i}`, i % 7 === 0 ? null : "x"]);

const drawnRows = (container: HTMLElement) =>
  Array.from(container.querySelectorAll<HTMLElement>("[data-row]")).map((r) => Number(r.dataset.row));

describe("VirtualGrid", () => {
  it("renders only a window of 100,000 rows", () => {
    const { container } = render(<VirtualGrid columns={columns} rows={rows} height={400} testid="g" />);
    const drawn = drawnRows(container);
    expect(drawn.length).toBeGreaterThan(10);
    expect(drawn.length).toBeLessThan(40);
    expect(drawn[0]).toBe(0);
    // The body is as tall as all rows, so the scrollbar is true to size.
    const body = container.querySelector<HTMLElement>(".grid-body")!;
    expect(body.style.height).toBe(`${100_000 * ROW_HEIGHT}px`);
    expect(screen.getByTestId("g").getAttribute("aria-rowcount")).toBe("100000");
    expect(screen.getByText("row 0")).toBeTruthy();
    expect(screen.getAllByText("NULL").length).toBeGreaterThan(0);
  });

  it("changes which rows render as it scrolls", () => {
    const { container } = render(<VirtualGrid columns={columns} rows={rows} height={400} testid="g" />);
    const scroller = screen.getByTestId("g-scroll");
    scroller.scrollTop = 50_000 * ROW_HEIGHT;
    fireEvent.scroll(scroller);
    const drawn = drawnRows(container);
    expect(drawn).toContain(50_000);
    expect(drawn).not.toContain(0);
    expect(drawn.length).toBeLessThan(40);
    expect(screen.getByText("row 50000")).toBeTruthy();
    const top = container.querySelector<HTMLElement>('[data-row="50000"]')!;
    expect(top.style.top).toBe(`${50_000 * ROW_HEIGHT}px`);

    scroller.scrollTop = 99_990 * ROW_HEIGHT;
    fireEvent.scroll(scroller);
    const end = drawnRows(container);
    expect(end).toContain(99_999);
    expect(end).not.toContain(50_000);
  });

  it("computes the visible range with overscan, clamped to the rows", () => {
    expect(visibleRange(0, 280, 100)).toEqual({ first: 0, last: 18 });
    expect(visibleRange(2800, 280, 100)).toEqual({ first: 92, last: 100 });
    expect(visibleRange(0, 280, 3)).toEqual({ first: 0, last: 3 });
  });
});
