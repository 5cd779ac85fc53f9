// CodeMirror is the largest part of the bundle: load it when an editor shows.
import { lazy, Suspense, type ComponentProps } from "react";

const Editor = lazy(() => import("./SqlEditor").then((m) => ({ default: m.SqlEditor })));

export function SqlEditor(props: ComponentProps<typeof Editor>) {
  return (
    <Suspense fallback={<div className="sql-editor loading" style={{ minHeight: props.minHeight ?? 160 }} />}>
      <Editor {...props} />
    </Suspense>
  );
}
