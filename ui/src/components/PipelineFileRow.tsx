// A pipeline file's path: typed, or picked with the native dialog, then
// acted on by the screen's own button (given as children).
import type { ReactNode } from "react";
import * as backend from "../backend";
import { errorText } from "../errors";

export function PipelineFileRow(props: {
  label: string;
  value: string;
  onChange: (path: string) => void;
  /** Called with the picked path; defaults to `onChange`. */
  onPicked?: (path: string) => void | Promise<void>;
  testId: string;
  browseTestId?: string;
  /** Called with why the dialog's choice was refused (e.g. the home folder). */
  onError?: (message: string) => void;
  children: ReactNode;
}) {
  const picked = props.onPicked ?? props.onChange;
  return (
    <div className="row">
      <input
        aria-label={props.label}
        className="grow"
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        placeholder="/path/to/pipeline.toml"
        data-testid={props.testId}
        spellCheck={false}
      />
      <button
        type="button"
        className="secondary"
        onClick={async () => {
          try {
            const p = await backend.pickPipelineFile();
            if (p) await picked(p);
          } catch (e) {
            props.onError?.(errorText(e));
          }
        }}
        data-testid={props.browseTestId}
      >
        Browse…
      </button>
      {props.children}
    </div>
  );
}
