// Errors cross the IPC boundary as `{ code, message }`; the UI shows the
// message and never parses it.
import type { BackendError } from "./types";
import type { FailureCode } from "./bindings";

const CODES: readonly FailureCode[] = ["config", "connection", "io", "sql", "not_found", "busy", "outside_scope", "internal"];

export function asBackendError(e: unknown): BackendError {
  if (e && typeof e === "object" && "message" in e) {
    const o = e as { code?: unknown; message?: unknown };
    const code = CODES.find((c) => c === o.code) ?? "internal";
    return { code, message: String(o.message) };
  }
  return { code: "internal", message: String(e) };
}

export function errorText(e: unknown): string {
  return asBackendError(e).message;
}
