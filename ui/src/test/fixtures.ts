// Connector schemas as the shell hands them out (the subset `syncline
// schema` prints for the files source and the DuckDB target).
import type { JsonSchema, KindInfo } from "../types";

const defs: Record<string, JsonSchema> = {
  FilesTableConfig: {
    type: "object",
    properties: {
      name: { type: "string", description: "Table name (also the target table's name)." },
      pattern: { type: "string", description: "Glob relative to the folder, e.g. `orders/*.csv`." },
      format: { anyOf: [{ $ref: "#/$defs/FileFormat" }, { type: "null" }], description: "File format." },
      key: { type: "array", items: { type: "string" }, description: "Key columns." },
      mode: { $ref: "#/$defs/SyncMode", description: "How the table is kept in sync.", default: "cdc" },
      delimiter: { type: "string", minLength: 1, maxLength: 1, description: "CSV field delimiter.", default: "," },
    },
    required: ["name", "pattern"],
  },
  FileFormat: {
    oneOf: [
      { type: "string", const: "csv", description: "Comma-separated values." },
      { type: "string", const: "jsonl", description: "One JSON object per line." },
    ],
  },
  SyncMode: {
    oneOf: [
      { type: "string", const: "cdc", description: "Follow changes." },
      { type: "string", const: "full", description: "Reload." },
    ],
  },
  Secret: { type: "string", pattern: "^\\$\\{(env|keyring):[^}]+\\}$", "x-secret": true },
  WriteMode: {
    oneOf: [
      { type: "string", const: "upsert" },
      { type: "string", const: "append" },
      { type: "string", const: "history" },
    ],
  },
};

export const filesSchema: JsonSchema = {
  type: "object",
  properties: {
    kind: { type: "string", const: "files" },
    path: { type: "string", description: "The folder, relative to the pipeline file." },
    tables: { type: "array", items: { $ref: "#/$defs/FilesTableConfig" }, minItems: 1, description: "The tables this folder holds." },
    batch_rows: { type: "integer", minimum: 1, maximum: 1000000, default: 10000, description: "Changes per batch." },
    debounce_ms: { type: "integer", minimum: 0, default: 300, description: "Quiet time in milliseconds." },
  },
  required: ["kind", "path", "tables"],
  $defs: defs,
};

export const pgSchema: JsonSchema = {
  type: "object",
  properties: {
    kind: { type: "string", const: "postgres" },
    host: { type: "string", default: "127.0.0.1", description: "Host name or address." },
    database: { type: "string", description: "Database name." },
    password: { anyOf: [{ $ref: "#/$defs/Secret" }, { type: "null" }], description: "Password, as a reference." },
    sslmode: { type: ["string", "null"], enum: ["disable", "prefer", "require"], description: "TLS." },
    follow: { type: "boolean", description: "Keep following." },
    options: { type: "object", properties: { application_name: { type: "string", description: "Shown in pg_stat_activity." } } },
  },
  required: ["kind", "database"],
  $defs: defs,
};

export const duckdbSchema: JsonSchema = {
  type: "object",
  properties: {
    kind: { type: "string", const: "duckdb" },
    path: { type: "string", description: "Database file, relative to the pipeline file." },
    schema: { type: "string", default: "main", description: "DuckDB schema." },
    inputs: { type: "array", items: { type: "string" }, description: "What this target receives." },
    mode: { $ref: "#/$defs/WriteMode", default: "upsert", description: "How changes are written." },
  },
  required: ["kind", "path", "inputs"],
  $defs: defs,
};

export const kinds: KindInfo[] = [
  { kind: "files", role: "source", title: "Files", description: "A folder of CSV, JSON-lines or Parquet files.", schema: filesSchema },
  { kind: "postgres", role: "source", title: "PostgreSQL", description: "A PostgreSQL database.", schema: pgSchema },
  { kind: "duckdb", role: "target", title: "DuckDB", description: "A DuckDB database file.", schema: duckdbSchema },
];

export const sampleToml = `name = "shop"

[sources.shop]
kind = "files"
path = "shop"

[[sources.shop.tables]]
name = "customers"
pattern = "customers.csv"
key = ["customer_id"]

[[sources.shop.tables]]
name = "orders"
pattern = "orders/*.csv"
key = ["order_id"]

[targets.warehouse]
kind = "duckdb"
path = "shop.duckdb"
inputs = ["shop"]
`;
