// CodeMirror 6 SQL editor: highlighting, completion of table and column
// names, and an inline error marker at the line and column the engine gave.
import { useEffect, useRef } from "react";
import { autocompletion, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { sql, StandardSQL } from "@codemirror/lang-sql";
import { bracketMatching, defaultHighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { Compartment, EditorState } from "@codemirror/state";
import { EditorView, highlightActiveLine, keymap, lineNumbers, placeholder } from "@codemirror/view";

type Props = {
  value: string;
  onChange?: (value: string) => void;
  /** Tables and their columns, for completion; `defaultTable` completes unqualified. */
  tables?: Record<string, string[]>;
  defaultTable?: string;
  error?: { message: string; line: number | null; column: number | null } | null;
  readOnly?: boolean;
  testid?: string;
  minHeight?: number;
  placeholderText?: string;
};

export function SqlEditor({
  value,
  onChange,
  tables,
  defaultTable,
  error,
  readOnly,
  testid = "sql-editor",
  minHeight = 160,
  placeholderText,
}: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const language = useRef(new Compartment());
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;

  useEffect(() => {
    if (!host.current) return;
    const state = EditorState.create({
      doc: value,
      extensions: [
        lineNumbers(),
        history(),
        bracketMatching(),
        highlightActiveLine(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        language.current.of(sql({ dialect: StandardSQL, schema: tables, defaultTable, upperCaseKeywords: true })),
        autocompletion({ activateOnTyping: true }),
        lintGutter(),
        keymap.of([...defaultKeymap, ...historyKeymap, ...completionKeymap]),
        EditorView.lineWrapping,
        EditorState.readOnly.of(readOnly === true),
        EditorView.editable.of(readOnly !== true),
        placeholder(placeholderText ?? ""),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) onChangeRef.current?.(u.state.doc.toString());
        }),
        EditorView.theme({ "&": { minHeight: `${minHeight}px` }, ".cm-scroller": { minHeight: `${minHeight}px` } }),
      ],
    });
    const v = new EditorView({ state, parent: host.current });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is created once; later props flow in through the effects below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [readOnly]);

  // Outside changes of the text (e.g. a new file opened).
  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [value]);

  useEffect(() => {
    view.current?.dispatch({
      effects: language.current.reconfigure(
        sql({ dialect: StandardSQL, schema: tables, defaultTable, upperCaseKeywords: true }),
      ),
    });
  }, [tables, defaultTable]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    if (!error) {
      v.dispatch(setDiagnostics(v.state, []));
      return;
    }
    const doc = v.state.doc;
    const lineNo = Math.min(Math.max(error.line ?? 1, 1), doc.lines);
    const line = doc.line(lineNo);
    const from = Math.min(line.from + Math.max((error.column ?? 1) - 1, 0), line.to);
    const to = Math.min(Math.max(from + 1, line.to), doc.length);
    v.dispatch(setDiagnostics(v.state, [{ from, to: Math.max(to, from), severity: "error", message: error.message }]));
  }, [error, value]);

  return <div className={`sql-editor${readOnly ? " readonly" : ""}`} ref={host} data-testid={testid} />;
}
