// One backend call a screen makes on demand: its last result, its error
// (as text) and whether it is running.
import { useState } from "react";
import { errorText } from "./errors";

export function useCall<T>() {
  const [result, setResult] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  /** Runs `f`; with `dropOnError`, a failure also drops the last result
   * (it would answer another question), which stays shown meanwhile. */
  const call = async (f: () => Promise<T>, dropOnError = false) => {
    setRunning(true);
    setError(null);
    try {
      setResult(await f());
    } catch (e) {
      if (dropOnError) setResult(null);
      setError(errorText(e));
    } finally {
      setRunning(false);
    }
  };
  return { result, error, running, call };
}
