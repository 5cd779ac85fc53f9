// Sources -> transforms -> targets, as a read-only node graph.
import { Background, Handle, Position, ReactFlow, type Edge, type Node, type NodeProps } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useState } from "react";
import { fmtSeconds } from "../format";
import type { PipelineDraft, PipelineStatus, TargetVerdict } from "../types";

const NODE_WIDTH = 180;
const NODE_HEIGHT = 40;
/** Targets show their own lag and checkpoint on a second line. */
const TARGET_HEIGHT = 56;
/** A search index's node holds a search box under its label. */
const SEARCH_HEIGHT = 96;
/** A line more for the last verification's verdict. */
const LINE_HEIGHT = 16;

/** A target's last verification in words (`short`: as its node's line). */
export function verdictText(v: TargetVerdict, verifiedAt: string, short = false): string {
  const at = new Date(verifiedAt);
  const time = Number.isNaN(at.getTime()) ? verifiedAt : at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const head = short ? `${time} ·` : `verified ${time}:`;
  switch (v.state) {
    case "in_sync":
      return `${head} in sync`;
    case "differs":
      return `${head} ${v.differing} ${v.differing === 1 ? "row differs" : "rows differ"}`;
    case "failed":
      return short ? `${time} · verify failed` : `verify failed ${time}`;
    default:
      return `not verified`;
  }
}

/** A target's own progress, as its node shows it: lag and the last batch committed. */
export function targetProgress(status: PipelineStatus | null | undefined, name: string): string | null {
  const t = status?.targets?.[name];
  if (!t) return null;
  const seqs = Object.values(t.committedSeq);
  const at = seqs.length ? Math.max(...seqs) : null;
  return `lag ${fmtSeconds(t.lagSeconds)} · batch ${at ?? "—"}`;
}

export function graphOf(
  draft: PipelineDraft,
  status?: PipelineStatus | null,
  verdicts?: Record<string, string>,
): { nodes: Node[]; edges: Edge[] } {
  const nodes: Node[] = [];
  const edges: Edge[] = [];
  const sources = Object.entries(draft.sources);
  const transforms = Object.entries(draft.transforms ?? {});
  const targets = Object.entries(draft.targets);
  // Sizes and handles are given, not measured: React Flow hides a node
  // until it knows its size, and some web views never report it.
  const column = (x: number, items: [string, Record<string, unknown>][], prefix: string, type: "input" | "default" | "output", dy = 0) => {
    // Nodes stack with a gap, whatever their heights.
    let y = 20 + dy;
    items.forEach(([name, cfg]) => {
      const progress = prefix === "target" ? targetProgress(status, name) : null;
      const verdict = prefix === "target" ? (verdicts?.[name] ?? null) : null;
      const lines = [progress, verdict].filter((l): l is string => l !== null);
      const searchable = prefix === "target" && cfg.kind === "search";
      const extra = verdict ? LINE_HEIGHT : 0;
      const height = searchable ? SEARCH_HEIGHT + extra : progress ? TARGET_HEIGHT + extra : verdict ? TARGET_HEIGHT : NODE_HEIGHT;
      const top = y;
      y += Math.max(height, NODE_HEIGHT) + 50;
      nodes.push({
        id: `${prefix}:${name}`,
        type,
        position: { x, y: top },
        width: NODE_WIDTH,
        height,
        handles: [
          ...(type === "output" ? [] : [{ type: "source" as const, position: Position.Right, x: NODE_WIDTH, y: height / 2, width: 1, height: 1 }]),
          ...(type === "input" ? [] : [{ type: "target" as const, position: Position.Left, x: 0, y: height / 2, width: 1, height: 1 }]),
        ],
        sourcePosition: Position.Right,
        targetPosition: Position.Left,
        data: { label: `${name}${cfg.kind ? ` (${String(cfg.kind)})` : ""}${lines.map((l) => `\n${l}`).join("")}`, target: name },
        className: `node-${prefix}`,
        ...(searchable ? { type: "search" } : {}),
      });
    });
  };
  column(0, sources, "source", "input");
  // Transforms sit lower, so a source's direct edge to a target stays in sight.
  column(260, transforms as [string, Record<string, unknown>][], "transform", "default", 70);
  column(520, targets, "target", "output");
  const sourceOf = (ref: string) => `source:${ref.split(".")[0]}`;
  for (const [name, t] of transforms) {
    edges.push({ id: `e:${t.input}->${name}`, source: sourceOf(t.input), target: `transform:${name}`, label: t.input.split(".").slice(1).join("."), animated: true });
  }
  for (const [name, target] of targets) {
    const inputs = Array.isArray(target.inputs) ? (target.inputs as string[]) : [];
    for (const input of inputs) {
      const from = draft.transforms?.[input] ? `transform:${input}` : sourceOf(input);
      edges.push({
        id: `e:${input}->${name}`,
        source: from,
        target: `target:${name}`,
        label: from.startsWith("source:") && input.includes(".") ? input.split(".").slice(1).join(".") : undefined,
        animated: true,
      });
    }
  }
  return { nodes, edges };
}

/** A search index target's node: its label and progress, and a search box
 * that opens the results in the data view. */
function SearchNode({ data }: NodeProps<Node<{ label: string; target: string; onSearch?: (target: string, query: string) => void }>>) {
  const [query, setQuery] = useState("");
  return (
    <div className="search-node" data-testid={`graph-search-${data.target}`}>
      <Handle type="target" position={Position.Left} />
      <div className="search-node-label">{data.label}</div>
      <form
        className="row nodrag nopan"
        onSubmit={(e) => {
          e.preventDefault();
          if (query.trim()) data.onSearch?.(data.target, query.trim());
        }}
      >
        <input
          aria-label={`Search ${data.target}`}
          className="grow nodrag nopan"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          placeholder="Search…"
          spellCheck={false}
          data-testid={`graph-search-${data.target}-query`}
        />
        <button type="submit" className="secondary" disabled={!query.trim()} data-testid={`graph-search-${data.target}-run`}>
          Go
        </button>
      </form>
    </div>
  );
}

const nodeTypes = { search: SearchNode };

export function PipelineGraph({
  draft,
  status,
  onSearch,
  verdicts,
}: {
  draft: PipelineDraft;
  status?: PipelineStatus | null;
  /** Each target's last verification, in words (a line of its node). */
  verdicts?: Record<string, string>;
  /** Searches a search index target (its node holds the box). */
  onSearch?: (target: string, query: string) => void;
}) {
  const { nodes, edges } = graphOf(draft, status, verdicts);
  const withSearch = onSearch ? nodes.map((n) => (n.type === "search" ? { ...n, data: { ...n.data, onSearch } } : n)) : nodes;
  return (
    <div className="graph" data-testid="pipeline-graph">
      <ReactFlow
        nodes={withSearch}
        edges={edges}
        nodeTypes={nodeTypes}
        fitView
        nodesDraggable={false}
        nodesConnectable={false}
        elementsSelectable={false}
        proOptions={{ hideAttribution: true }}
        panOnDrag
        zoomOnScroll={false}
      >
        <Background />
      </ReactFlow>
    </div>
  );
}
