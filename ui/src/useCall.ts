// One backend call a screen makes on demand: its last result, its error
// (as text) and whether it is running.
import { useState } from "react";
import { errorText } from "./errors";

export function useCall<T>() {
  const [result, setResult] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  /** Runs `f`; `clear` drops the previous result first. */
  const call = async (f: () => Promise<T>, clear = false) => {
    setRunning(true);
    setError(null);
    if (clear) setResult(null);
    try {
      setResult(await f());
    } catch (e) {
      setError(errorText(e));
    } finally {
      setRunning(false);
    }
  };
  return { result, error, running, call };
}
