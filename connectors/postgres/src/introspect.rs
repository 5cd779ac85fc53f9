//! Reading the catalog: tables, columns, types, keys, replica identity.

use std::sync::Arc;

use sqlx::Row as _;
use sqlx::postgres::PgConnection;
use syncline_engine::model::{Column, TableId, TableSchema};

use crate::error::PgError;
use crate::source::PgTableConfig;
use crate::types::Decoder;

/// Everything known about one source table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// The pipeline's view of it.
    pub schema: Arc<TableSchema>,
    /// One decoder per column.
    pub decoders: Vec<Decoder>,
    /// Postgres schema name.
    pub pg_schema: String,
    /// Postgres table name.
    pub pg_table: String,
    /// Relation OID.
    pub oid: u32,
    /// `d` default, `f` full, `i` index, `n` nothing.
    pub replica_identity: char,
    /// Whether the key is the primary key or the replica identity index, so
    /// no two rows of one snapshot share it (a declared `key` may repeat).
    pub key_is_unique: bool,
}

impl TableInfo {
    /// `"schema"."table"` for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.pg_schema), quote(&self.pg_table))
    }

    /// `schema.table` as pgoutput names it.
    pub fn wire_name(&self) -> String {
        format!("{}.{}", self.pg_schema, self.pg_table)
    }
}

/// Quotes an identifier.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Quotes a string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A column whose type cannot be read.
#[derive(Debug, Clone)]
pub struct Unsupported {
    /// Column.
    pub column: String,
    /// Its type name.
    pub type_name: String,
}

/// Resolves a type OID to a decoder: built-ins, enums, domains, arrays.
pub async fn resolve_type(
    conn: &mut PgConnection,
    oid: u32,
    typmod: i32,
) -> Result<Option<Decoder>, PgError> {
    let mut oid = oid;
    let mut typmod = typmod;
    for _ in 0..8 {
        if let Some(d) = Decoder::builtin(oid, typmod) {
            return Ok(Some(d));
        }
        let row = sqlx::query(
            "SELECT typtype::text, typelem::int8, typbasetype::int8, typtypmod, typcategory::text
             FROM pg_type WHERE oid = $1::int8::oid",
        )
        .bind(i64::from(oid))
        .fetch_optional(&mut *conn)
        .await
        .map_err(PgError::query("reading pg_type"))?;
        let Some(row) = row else { return Ok(None) };
        let typtype: String = row.get(0);
        let elem: i64 = row.get(1);
        let base: i64 = row.get(2);
        let base_typmod: i32 = row.get(3);
        let category: String = row.get(4);
        match (typtype.as_str(), category.as_str()) {
            ("e", _) => return Ok(Some(Decoder::Text)),
            ("d", _) => {
                oid = base as u32;
                if typmod < 0 {
                    typmod = base_typmod;
                }
            }
            (_, "A") if elem != 0 => {
                let item = Box::pin(resolve_type(conn, elem as u32, typmod)).await?;
                return Ok(item.map(|i| Decoder::Array(Box::new(i))));
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Reads one table's description. Columns of unsupported types are returned
/// in the second element rather than failing, so `check` can list them all.
pub async fn describe(
    conn: &mut PgConnection,
    source: &str,
    table: &PgTableConfig,
) -> Result<(TableInfo, Vec<Unsupported>), PgError> {
    let (pg_schema, pg_table) = table.qualified();
    let rel = sqlx::query(
        "SELECT c.oid::int8, c.relreplident::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
    )
    .bind(&pg_schema)
    .bind(&pg_table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(PgError::query(format!(
        "looking up table {pg_schema}.{pg_table}"
    )))?;
    let Some(rel) = rel else {
        return Err(PgError::Table {
            table: format!("{pg_schema}.{pg_table}"),
            detail: "does not exist (or this user cannot see it)".into(),
        });
    };
    let oid = rel.get::<i64, _>(0) as u32;
    let replica_identity = rel.get::<String, _>(1).chars().next().unwrap_or('d');

    let attrs = sqlx::query(
        "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, a.attnotnull, format_type(a.atttypid, a.atttypmod)
         FROM pg_attribute a WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .bind(i64::from(oid))
    .fetch_all(&mut *conn)
    .await
    .map_err(PgError::query("reading columns"))?;
    let mut columns = Vec::new();
    let mut decoders = Vec::new();
    let mut unsupported = Vec::new();
    for a in &attrs {
        let name: String = a.get(0);
        let type_oid = a.get::<i64, _>(1) as u32;
        let typmod: i32 = a.get(2);
        let not_null: bool = a.get(3);
        let type_name: String = a.get(4);
        match resolve_type(conn, type_oid, typmod).await? {
            Some(d) => {
                columns.push(Column {
                    name,
                    data_type: d.data_type(),
                    nullable: !not_null,
                });
                decoders.push(d);
            }
            None => unsupported.push(Unsupported {
                column: name,
                type_name,
            }),
        }
    }

    let key_query = |flag: &str| {
        format!(
            "SELECT a.attname::text FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = $1::int8::oid AND i.{flag}
             ORDER BY array_position(i.indkey::int2[], a.attnum)"
        )
    };
    let primary: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(key_query("indisprimary")))
        .bind(i64::from(oid))
        .fetch_all(&mut *conn)
        .await
        .map_err(PgError::query("reading the primary key"))?;
    let identity_index: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(key_query("indisreplident")))
            .bind(i64::from(oid))
            .fetch_all(&mut *conn)
            .await
            .map_err(PgError::query("reading the replica identity index"))?;

    let qualified = format!("{pg_schema}.{pg_table}");
    let identified = match replica_identity {
        'f' => true,
        'i' => !identity_index.is_empty(),
        'd' => !primary.is_empty(),
        _ => false,
    };
    if !identified {
        return Err(PgError::Table {
            table: qualified.clone(),
            detail: format!(
                "has no primary key and its REPLICA IDENTITY is {}, so updates and deletes cannot be identified in the change log; fix it with `ALTER TABLE {} REPLICA IDENTITY FULL` (and declare key = [...] if some columns are unique), or add a primary key",
                match replica_identity {
                    'n' => "NOTHING",
                    'i' => "an index that is gone",
                    _ => "DEFAULT",
                },
                format_args!("{}.{}", quote(&pg_schema), quote(&pg_table))
            ),
        });
    }
    let key_names: Vec<String> = if !table.key.is_empty() {
        table.key.clone()
    } else if !primary.is_empty() {
        primary.clone()
    } else {
        identity_index.clone()
    };
    // A unique index (both of these are) on the same columns, in any order.
    let same_columns = |index: &[String]| {
        let mut a: Vec<&String> = index.iter().collect();
        let mut b: Vec<&String> = key_names.iter().collect();
        a.sort();
        b.sort();
        !a.is_empty() && a == b
    };
    let key_is_unique = same_columns(&primary) || same_columns(&identity_index);
    let mut key = Vec::new();
    for k in &key_names {
        match columns.iter().position(|c| c.name == *k) {
            Some(i) => key.push(i),
            None => {
                return Err(PgError::Table {
                    table: qualified,
                    detail: format!(
                        "key column `{k}` is not a column of the table (or has an unsupported type)"
                    ),
                });
            }
        }
    }
    let schema = Arc::new(TableSchema {
        id: TableId {
            origin: source.to_owned(),
            name: table.engine_name(),
        },
        columns,
        key,
        version: 1,
    });
    Ok((
        TableInfo {
            schema,
            decoders,
            pg_schema,
            pg_table,
            oid,
            replica_identity,
            key_is_unique,
        },
        unsupported,
    ))
}
