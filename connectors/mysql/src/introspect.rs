//! Tables, columns and keys as `information_schema` describes them, and the
//! type map.
//!
//! | MySQL / MariaDB                         | engine                         |
//! |-----------------------------------------|--------------------------------|
//! | `tinyint`, `smallint`, `mediumint`, `int` | `Int32` (`int unsigned`: `Int64`) |
//! | `bigint`                                | `Int64` (`unsigned`: `Decimal(20,0)`) |
//! | `decimal(p,s)`                          | `Decimal(p,s)`                 |
//! | `float`, `double`                       | `Float64` (a `float` as its shortest decimal) |
//! | `char`, `varchar`, `*text` in UTF-8, `enum`, `set` | `Text` (`set`: its members joined by `,`) |
//! | `binary`, `varbinary`, `*blob`          | `Bytes`                        |
//! | `json` (MariaDB: text checked by `json_valid`) | `Json`                  |
//! | `bit(1)`                                | `Boolean` (`bit(n)`: `Int64`; `bit(64)`: `Decimal(20,0)`) |
//! | `date`                                  | `Date`                         |
//! | `datetime`                              | `Timestamp`                    |
//! | `timestamp`                             | `TimestampTz`                  |
//! | `time` (a duration, ±838 hours)         | `Interval`                     |
//! | `year`                                  | `Int32`                        |
//!
//! Refused when the pipeline starts, naming the column: text in a character
//! set other than UTF-8 (the binary log carries it unconverted), `time(1)`
//! and `time(2)` (the driver misreads their negative values in the log),
//! MariaDB's `uuid` (logged in its storage order), spatial types and
//! anything else. A zero date (`0000-00-00`) or a date with a zero
//! month or day, which MariaDB stores under a lax `sql_mode`, is no date:
//! its row becomes a dead letter, never a NULL.

use std::sync::Arc;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use syncline_engine::model::{Column, DataType, TableId, TableSchema};

use crate::config::MySqlTableConfig;
use crate::error::MyError;

/// A column's type at the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MyType {
    /// An integer of `bits` bits (8, 16, 24, 32, 64).
    Int {
        /// Width.
        bits: u8,
        /// `unsigned`.
        unsigned: bool,
    },
    /// `decimal(p,s)`.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `float` (4 bytes).
    Float,
    /// `double`.
    Double,
    /// Character strings in UTF-8 (or ASCII).
    Text,
    /// Character strings in `latin1`, which MySQL defines as Windows-1252:
    /// a query returns them converted, the binary log as they are stored.
    Latin1,
    /// Byte strings.
    Bytes,
    /// `binary(n)`: byte strings of `n` bytes.
    FixedBytes(u32),
    /// A JSON document.
    Json,
    /// `enum(...)`: its members, in order.
    Enum(Vec<String>),
    /// `set(...)`: its members, in order.
    Set(Vec<String>),
    /// `bit(n)`.
    Bit(u8),
    /// `date`.
    Date,
    /// `datetime`.
    DateTime,
    /// `timestamp` (stored in UTC).
    Timestamp,
    /// `time`.
    Time,
    /// `year`.
    Year,
}

impl MyType {
    /// The engine type a column of this type becomes.
    pub fn data_type(&self) -> DataType {
        match self {
            MyType::Int {
                bits: 64,
                unsigned: true,
            } => DataType::Decimal {
                precision: 20,
                scale: 0,
            },
            MyType::Int {
                bits: 32,
                unsigned: true,
            }
            | MyType::Int { bits: 64, .. } => DataType::Int64,
            MyType::Int { .. } | MyType::Year => DataType::Int32,
            MyType::Decimal { precision, scale } => DataType::Decimal {
                precision: *precision,
                scale: *scale,
            },
            MyType::Float | MyType::Double => DataType::Float64,
            MyType::Text | MyType::Latin1 | MyType::Enum(_) | MyType::Set(_) => DataType::Text,
            MyType::Bytes | MyType::FixedBytes(_) => DataType::Bytes,
            MyType::Json => DataType::Json,
            MyType::Bit(1) => DataType::Boolean,
            MyType::Bit(64) => DataType::Decimal {
                precision: 20,
                scale: 0,
            },
            MyType::Bit(_) => DataType::Int64,
            MyType::Date => DataType::Date,
            MyType::DateTime => DataType::Timestamp,
            MyType::Timestamp => DataType::TimestampTz,
            MyType::Time => DataType::Interval,
        }
    }

    /// Parses `information_schema.COLUMNS`' `DATA_TYPE` and `COLUMN_TYPE`
    /// (`int(10) unsigned`, `enum('a','b')`, `decimal(12,2)`), with the
    /// column's character set (`None` or `binary` for byte strings) and
    /// whether a `json_valid` check holds it. `None`: not supported.
    pub fn parse(
        data_type: &str,
        column_type: &str,
        charset: Option<&str>,
        json_checked: bool,
    ) -> Option<MyType> {
        let data_type = data_type.to_ascii_lowercase();
        let column_type_lower = column_type.to_ascii_lowercase();
        let unsigned = column_type_lower.contains("unsigned");
        let binary = matches!(charset, None | Some("binary"));
        // The binary log carries text in its column's own character set;
        // UTF-8 (and its subset ASCII) is read as it is.
        let utf8 = charset.is_some_and(|c| c.starts_with("utf8") || c == "ascii");
        // And latin1 converted from Windows-1252.
        let latin1 = charset == Some("latin1");
        let args = || {
            let open = column_type.find('(')?;
            let close = column_type.rfind(')')?;
            Some(&column_type[open + 1..close])
        };
        let int = |bits| Some(MyType::Int { bits, unsigned });
        match data_type.as_str() {
            "tinyint" => int(8),
            "smallint" => int(16),
            "mediumint" => int(24),
            "int" | "integer" => int(32),
            "bigint" => int(64),
            "decimal" | "numeric" => {
                let inner = args().unwrap_or("10,0");
                let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
                Some(MyType::Decimal {
                    precision: p.trim().parse().ok()?,
                    scale: s.trim().parse().ok()?,
                })
            }
            "float" => Some(MyType::Float),
            "double" | "real" | "double precision" => Some(MyType::Double),
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
                if json_checked && utf8 =>
            {
                Some(MyType::Json)
            }
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" if utf8 => {
                Some(MyType::Text)
            }
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
                if latin1 && !json_checked =>
            {
                Some(MyType::Latin1)
            }
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" if !binary => None,
            // The log leaves a fixed-length binary string's trailing zero
            // bytes out; a query keeps them.
            "binary" | "char" => Some(MyType::FixedBytes(args()?.trim().parse().ok()?)),
            "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "varbinary"
            | "tinyblob" | "blob" | "mediumblob" | "longblob" => Some(MyType::Bytes),
            "json" => Some(MyType::Json),
            "enum" => Some(MyType::Enum(members(args()?))),
            "set" => Some(MyType::Set(members(args()?))),
            "bit" => Some(MyType::Bit(
                args().and_then(|a| a.trim().parse().ok()).unwrap_or(1),
            )),
            "date" => Some(MyType::Date),
            "datetime" => Some(MyType::DateTime),
            "timestamp" => Some(MyType::Timestamp),
            // The driver misreads negative `time(1)` and `time(2)` values
            // in the log.
            "time" if matches!(args().map(str::trim), Some("1" | "2")) => None,
            "time" => Some(MyType::Time),
            "year" => Some(MyType::Year),
            // MariaDB logs a `uuid` in its storage order, not yet read.
            _ => None,
        }
    }
}

/// The members of an `enum` or `set` definition: `'a','b''c'` → `a`, `b'c`.
fn members(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut member = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    member.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        member.push(next);
                    }
                }
                c => member.push(c),
            }
        }
        out.push(member);
    }
    out
}

/// One column of a source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// Type at the source.
    pub ty: MyType,
    /// Whether NULL may appear.
    pub nullable: bool,
    /// Whether it has a default other than NULL: rows that were there
    /// when such a column was added hold the default without a row event.
    pub defaulted: bool,
    /// Its character set (text, enum and set members), as the server
    /// names it: the binary log carries members in it.
    pub charset: Option<String>,
}

impl ColumnInfo {
    /// Whether `other` is this column, enum and set members aside (the
    /// binary log numbers those by its own lists).
    pub fn same_but_members(&self, other: &ColumnInfo) -> bool {
        let kind = |t: &MyType| match t {
            MyType::Enum(_) => MyType::Enum(Vec::new()),
            MyType::Set(_) => MyType::Set(Vec::new()),
            t => t.clone(),
        };
        self.name == other.name
            && kind(&self.ty) == kind(&other.ty)
            && self.nullable == other.nullable
            && self.defaulted == other.defaulted
            && self.charset == other.charset
    }
}

/// A source table as the pipeline reads it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Name in the source's database (and in the pipeline).
    pub name: String,
    /// Columns in order.
    pub columns: Vec<ColumnInfo>,
    /// The engine schema.
    pub schema: Arc<TableSchema>,
}

impl TableInfo {
    /// The table's columns for a `SELECT` list.
    pub fn select_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `name` quoted as a MySQL identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `text` as a MySQL string literal (for `information_schema` lookups by
/// name in statements that take no parameters).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// A column whose type the source cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Column.
    pub column: String,
    /// Its type as the server names it.
    pub type_name: String,
}

/// Describes `table` of `database`, from source `source`: its columns with
/// their types, and its key (declared, else the primary key).
pub async fn describe(
    conn: &mut Conn,
    source: &str,
    database: &str,
    table: &MySqlTableConfig,
) -> Result<(TableInfo, Vec<Unsupported>), MyError> {
    type ColumnRow = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
             CAST(IS_NULLABLE AS CHAR), CAST(CHARACTER_SET_NAME AS CHAR), \
             CAST(COLUMN_DEFAULT AS CHAR) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (database, &table.name),
        )
        .await
        .map_err(MyError::query(format!(
            "reading the columns of table {}",
            table.name
        )))?;
    if rows.is_empty() {
        return Err(MyError::Table {
            table: table.name.clone(),
            detail: format!(
                "no such table in database `{database}` (names are case-sensitive on most servers)"
            ),
        });
    }
    // The consistent snapshot covers transactional tables only, and the
    // log has rows of base tables only.
    let kind: Option<(String, Option<String>)> = conn
        .exec_first(
            "SELECT CAST(TABLE_TYPE AS CHAR), CAST(ENGINE AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (database, &table.name),
        )
        .await
        .map_err(MyError::query(format!("reading the engine of table {}", table.name)))?;
    let (table_type, engine) = kind.unwrap_or_else(|| ("BASE TABLE".to_owned(), None));
    if table_type != "BASE TABLE" {
        return Err(MyError::Table {
            table: table.name.clone(),
            detail: format!(
                "is a {} (the binary log holds rows of base tables only): name the tables it reads instead",
                table_type.to_ascii_lowercase()
            ),
        });
    }
    if let Some(engine) = engine
        && !engine.eq_ignore_ascii_case("InnoDB")
    {
        return Err(MyError::Table {
            table: table.name.clone(),
            detail: format!(
                "uses the {engine} storage engine, which a consistent snapshot does not cover (rows changed while it is copied would be lost or doubled): convert it with `ALTER TABLE {} ENGINE = InnoDB`",
                quote(&table.name)
            ),
        });
    }
    let checks: Vec<String> = conn
        .exec(
            "SELECT CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (database, &table.name),
        )
        .await
        .unwrap_or_default();
    let mut columns = Vec::with_capacity(rows.len());
    let mut unsupported = Vec::new();
    for (name, data_type, column_type, nullable, charset, default) in rows {
        let json_checked = checks.iter().any(|c| {
            c.to_ascii_lowercase()
                .contains(&format!("json_valid({})", quote(&name)).to_ascii_lowercase())
        });
        match MyType::parse(&data_type, &column_type, charset.as_deref(), json_checked) {
            Some(ty) => columns.push(ColumnInfo {
                name,
                ty,
                nullable: nullable.eq_ignore_ascii_case("YES"),
                // MariaDB writes "no default" of a nullable column as NULL.
                defaulted: default.is_some_and(|d| !d.eq_ignore_ascii_case("NULL")),
                charset: charset.clone(),
            }),
            None => unsupported.push(Unsupported {
                column: name,
                type_name: match charset.as_deref() {
                    Some(cs) if cs != "binary" && !cs.starts_with("utf8") && cs != "ascii" => {
                        format!(
                            "{column_type} in character set {cs} (text is read in UTF-8 and latin1 only)"
                        )
                    }
                    _ => column_type,
                },
            }),
        }
    }
    let key_names: Vec<String> = if table.key.is_empty() {
        conn.exec(
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (database, &table.name),
        )
        .await
        .map_err(MyError::query(format!(
            "reading the key of table {}",
            table.name
        )))?
    } else {
        table.key.clone()
    };
    let mut key = Vec::with_capacity(key_names.len());
    for k in &key_names {
        match columns.iter().position(|c| &c.name == k) {
            Some(i) => key.push(i),
            None => {
                return Err(MyError::Table {
                    table: table.name.clone(),
                    detail: format!("key column `{k}` is not a column of the table"),
                });
            }
        }
    }
    let schema = Arc::new(schema_of(source, &table.name, &columns, key, 1));
    Ok((
        TableInfo {
            name: table.name.clone(),
            columns,
            schema,
        },
        unsupported,
    ))
}

/// The engine schema of `columns`.
pub fn schema_of(
    source: &str,
    table: &str,
    columns: &[ColumnInfo],
    key: Vec<usize>,
    version: u32,
) -> TableSchema {
    TableSchema {
        id: TableId {
            origin: source.to_owned(),
            name: table.to_owned(),
        },
        columns: columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                data_type: c.ty.data_type(),
                nullable: c.nullable,
            })
            .collect(),
        key,
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_parse_as_the_server_names_them() {
        let cases = [
            (
                "int",
                "int(10) unsigned",
                None,
                false,
                Some(DataType::Int64),
            ),
            ("int", "int(11)", None, false, Some(DataType::Int32)),
            (
                "bigint",
                "bigint(20) unsigned",
                None,
                false,
                Some(DataType::Decimal {
                    precision: 20,
                    scale: 0,
                }),
            ),
            (
                "decimal",
                "decimal(12,2)",
                None,
                false,
                Some(DataType::Decimal {
                    precision: 12,
                    scale: 2,
                }),
            ),
            (
                "varchar",
                "varchar(20)",
                Some("utf8mb4"),
                false,
                Some(DataType::Text),
            ),
            (
                "varbinary",
                "varbinary(20)",
                None,
                false,
                Some(DataType::Bytes),
            ),
            (
                "longtext",
                "longtext",
                Some("utf8mb4"),
                true,
                Some(DataType::Json),
            ),
            ("bit", "bit(1)", None, false, Some(DataType::Boolean)),
            ("bit", "bit(12)", None, false, Some(DataType::Int64)),
            (
                "timestamp",
                "timestamp(6)",
                None,
                false,
                Some(DataType::TimestampTz),
            ),
            ("time", "time(3)", None, false, Some(DataType::Interval)),
            ("geometry", "geometry", None, false, None),
            (
                "varchar",
                "varchar(10)",
                Some("latin1"),
                false,
                Some(DataType::Text),
            ),
            ("varchar", "varchar(10)", Some("cp1251"), false, None),
            ("longtext", "longtext", Some("latin1"), true, None),
            (
                "binary",
                "binary(16)",
                Some("binary"),
                false,
                Some(DataType::Bytes),
            ),
            ("time", "time(2)", None, false, None),
            ("time", "time(6)", None, false, Some(DataType::Interval)),
            ("uuid", "uuid", None, false, None),
        ];
        for (dt, ct, cs, json, want) in cases {
            assert_eq!(
                MyType::parse(dt, ct, cs, json).map(|t| t.data_type()),
                want,
                "{ct}"
            );
        }
    }

    #[test]
    fn enum_members_unquote_as_defined() {
        assert_eq!(
            MyType::parse("enum", "enum('a','b''c','d,e')", Some("utf8mb4"), false),
            Some(MyType::Enum(vec!["a".into(), "b'c".into(), "d,e".into()]))
        );
    }
}
