// A pipeline file's text with line numbers, lines with problems marked.
import type { Problem } from "../types";

export function TomlView({ text, problems, testid }: { text: string; problems: Problem[]; testid: string }) {
  const bad = new Set(problems.map((p) => p.line).filter((l): l is number => l !== null));
  return (
    <pre className="toml" data-testid={testid}>
      {text.split("\n").map((line, i) => (
        <div key={i} className={bad.has(i + 1) ? "bad" : undefined}>
          <span className="ln">{i + 1}</span>
          <span className="code">{line}</span>
        </div>
      ))}
    </pre>
  );
}
