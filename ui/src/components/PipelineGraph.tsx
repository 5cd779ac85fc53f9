// Sources -> transforms -> targets, as a read-only node graph.
import { Background, Position, ReactFlow, type Edge, type Node } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import type { PipelineDraft } from "../types";

const NODE_WIDTH = 180;
const NODE_HEIGHT = 40;

export function graphOf(draft: PipelineDraft): { nodes: Node[]; edges: Edge[] } {
  const nodes: Node[] = [];
  const edges: Edge[] = [];
  const sources = Object.entries(draft.sources);
  const transforms = Object.entries(draft.transforms ?? {});
  const targets = Object.entries(draft.targets);
  // Sizes and handles are given, not measured: React Flow hides a node
  // until it knows its size, and some web views never report it.
  const column = (x: number, items: [string, Record<string, unknown>][], prefix: string, type: "input" | "default" | "output", dy = 0) =>
    items.forEach(([name, cfg], i) =>
      nodes.push({
        id: `${prefix}:${name}`,
        type,
        position: { x, y: 20 + dy + i * 90 },
        width: NODE_WIDTH,
        height: NODE_HEIGHT,
        handles: [
          ...(type === "output" ? [] : [{ type: "source" as const, position: Position.Right, x: NODE_WIDTH, y: NODE_HEIGHT / 2, width: 1, height: 1 }]),
          ...(type === "input" ? [] : [{ type: "target" as const, position: Position.Left, x: 0, y: NODE_HEIGHT / 2, width: 1, height: 1 }]),
        ],
        sourcePosition: Position.Right,
        targetPosition: Position.Left,
        data: { label: `${name}${cfg.kind ? ` (${String(cfg.kind)})` : ""}` },
        className: `node-${prefix}`,
      }),
    );
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

export function PipelineGraph({ draft }: { draft: PipelineDraft }) {
  const { nodes, edges } = graphOf(draft);
  return (
    <div className="graph" data-testid="pipeline-graph">
      <ReactFlow
        nodes={nodes}
        edges={edges}
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
