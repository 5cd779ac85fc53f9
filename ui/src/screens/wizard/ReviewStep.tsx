// Step 7: the pipeline file as the shell renders it, with its problems.
import { useEffect, useState } from "react";
import * as backend from "../../backend";
import { TomlView } from "../../components/TomlView";
import { errorText } from "../../errors";
import type { PipelineDraft, Problem } from "../../types";

export function ProblemList({ problems }: { problems: Problem[] }) {
  if (problems.length === 0)
    return (
      <p className="ok" data-testid="review-valid">
        No problems found.
      </p>
    );
  return (
    <ul className="problems" data-testid="review-problems">
      {problems.map((p, i) => (
        <li key={i} className="error">
          {p.line !== null && `Line ${p.line}${p.column !== null ? `:${p.column}` : ""} `}
          {p.field && <code>{p.field}</code>} {p.message}
        </li>
      ))}
    </ul>
  );
}

export function ReviewStep({ path, draft }: { path: string; draft: PipelineDraft }) {
  const [text, setText] = useState<string | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        const rendered = await backend.renderPipeline(draft);
        if (!live) return;
        setText(rendered.text);
        setProblems(rendered.problems);
        const more = await backend.validatePipeline({ path, text: rendered.text });
        if (live) setProblems([...rendered.problems, ...more]);
      } catch (e) {
        if (live) setError(errorText(e));
      }
    })();
    return () => {
      live = false;
    };
  }, [path, draft]);
  return (
    <div className="stack">
      <p className="muted">
        The pipeline file as it will be saved to <code>{path}</code>. Secrets appear only as references.
      </p>
      {error && <p className="error" role="alert">{error}</p>}
      {text !== null && (
        <>
          <ProblemList problems={problems} />
          <TomlView text={text} problems={problems} testid="review-toml" />
        </>
      )}
    </div>
  );
}
