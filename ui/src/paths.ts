// Path helpers for the paths a pipeline file holds (relative to its folder).

function sep(p: string): string {
  return p.includes("\\") && !p.includes("/") ? "\\" : "/";
}

export function dirname(p: string): string {
  const i = Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\"));
  if (i < 0) return ".";
  if (i === 0) return p.slice(0, 1);
  return p.slice(0, i);
}

export function basename(p: string): string {
  const i = Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\"));
  return p.slice(i + 1);
}

export function isAbsolute(p: string): boolean {
  return p.startsWith("/") || p.startsWith("\\") || /^[A-Za-z]:[\\/]/.test(p);
}

export function join(dir: string, name: string): string {
  if (!dir) return name;
  const s = sep(dir);
  return dir.endsWith("/") || dir.endsWith("\\") ? dir + name : dir + s + name;
}

/** `p` as written in the pipeline file at `pipelinePath`, resolved. */
export function resolveFrom(pipelinePath: string, p: string): string {
  return isAbsolute(p) ? p : join(dirname(pipelinePath), p);
}
