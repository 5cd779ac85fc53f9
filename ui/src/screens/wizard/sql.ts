// Names and default SQL for the wizard's transform.
function quoteIdent(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

export function defaultSql(columns: string[]): string {
  return `SELECT ${columns.length ? columns.map(quoteIdent).join(", ") : "*"}\nFROM source`;
}

export function tableShortName(name: string): string {
  const parts = name.split(".");
  return parts[parts.length - 1];
}
