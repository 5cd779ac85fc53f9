// A read-only result grid that renders only the rows in view (fixed row
// height), so 100,000+ rows scroll as smoothly as ten.
import { useLayoutEffect, useRef, useState } from "react";

export const ROW_HEIGHT = 28;
const OVERSCAN = 8;

type Props = {
  columns: { name: string; dataType?: string }[];
  rows: unknown[][];
  /** Height of the scrolling area in pixels. */
  height?: number;
  testid?: string;
};

export function formatCell(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function columnWidth(name: string, dataType?: string): number {
  const chars = Math.max(name.length, dataType ? Math.min(dataType.length, 16) : 0);
  return Math.min(320, Math.max(90, chars * 8 + 28));
}

/** Which rows [first, last) to draw for a scroll position. */
export function visibleRange(scrollTop: number, viewport: number, count: number, rowHeight = ROW_HEIGHT) {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - OVERSCAN);
  const last = Math.min(count, Math.ceil((scrollTop + viewport) / rowHeight) + OVERSCAN);
  return { first, last };
}

export function VirtualGrid({ columns, rows, height = 420, testid = "grid" }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(height);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = () => setViewport(el.clientHeight > 0 ? el.clientHeight : height);
    measure();
    if (typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, [height]);

  // A new result starts at the top.
  useLayoutEffect(() => {
    if (scroller.current) scroller.current.scrollTop = 0;
    setScrollTop(0);
  }, [rows]);

  const widths = columns.map((c) => columnWidth(c.name, c.dataType));
  const template = `56px ${widths.map((w) => `${w}px`).join(" ")}`;
  const total = widths.reduce((a, b) => a + b, 56);
  const { first, last } = visibleRange(scrollTop, viewport, rows.length);
  const drawn = [];
  for (let i = first; i < last; i++) {
    const row = rows[i];
    drawn.push(
      <div
        key={i}
        className="grid-row"
        role="row"
        data-row={i}
        style={{ top: i * ROW_HEIGHT, height: ROW_HEIGHT, gridTemplateColumns: template, width: total }}
      >
        <div className="grid-cell rownum">{i + 1}</div>
        {columns.map((_, c) => {
          const v = row[c];
          return (
            <div key={c} className={`grid-cell${v === null || v === undefined ? " null" : ""}`} role="cell">
              {formatCell(v)}
            </div>
          );
        })}
      </div>,
    );
  }

  return (
    <div className="grid" data-testid={testid} role="table" aria-rowcount={rows.length}>
      <div
        ref={scroller}
        className="grid-scroll"
        style={{ height }}
        onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
        data-testid={`${testid}-scroll`}
      >
        <div className="grid-header" role="row" style={{ gridTemplateColumns: template, width: total }}>
          <div className="grid-cell rownum">#</div>
          {columns.map((c) => (
            <div key={c.name} className="grid-cell" role="columnheader" title={c.dataType}>
              <span className="col-name">{c.name}</span>
              {c.dataType && <span className="col-type">{c.dataType}</span>}
            </div>
          ))}
        </div>
        <div className="grid-body" style={{ height: rows.length * ROW_HEIGHT, width: total }}>
          {drawn}
        </div>
      </div>
      {rows.length === 0 && <p className="muted grid-empty">No rows.</p>}
    </div>
  );
}
