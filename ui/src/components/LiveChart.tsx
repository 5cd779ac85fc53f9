// Throughput and lag over time (uPlot on a canvas).
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Sample } from "../runs";

export function LiveChart({ history, width = 720, height = 180 }: { history: Sample[]; width?: number; height?: number }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    if (!host.current) return;
    const opts: uPlot.Options = {
      width,
      height,
      scales: {
        x: { time: true },
        rows: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
        lag: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
      },
      axes: [
        {},
        { scale: "rows", label: "rows/s", size: 60 },
        { scale: "lag", label: "lag (s)", side: 1, grid: { show: false }, size: 50 },
      ],
      series: [
        {},
        { label: "Throughput (rows/s)", scale: "rows", stroke: "#2563eb", width: 2, fill: "rgba(37,99,235,0.08)" },
        { label: "Lag (s)", scale: "lag", stroke: "#d97706", width: 2 },
      ],
      legend: { show: true },
    };
    plot.current = new uPlot(opts, [[], [], []], host.current);
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, [width, height]);

  useEffect(() => {
    plot.current?.setData([
      history.map((s) => s.t),
      history.map((s) => s.throughput),
      history.map((s) => s.lag),
    ] as uPlot.AlignedData);
  }, [history]);

  return <div className="live-chart" ref={host} data-testid="live-chart" />;
}
