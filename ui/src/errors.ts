// Errors cross the IPC boundary as `{ code, message }`; the UI shows the
// message and never parses it.
import type { BackendError } from "./types";

export function asBackendError(e: unknown): BackendError {
  if (e && typeof e === "object" && "message" in e) {
    const o = e as { code?: unknown; message?: unknown };
    return { code: typeof o.code === "string" ? o.code : "internal", message: String(o.message) };
  }
  return { code: "internal", message: String(e) };
}

export function errorText(e: unknown): string {
  return asBackendError(e).message;
}
