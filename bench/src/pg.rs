//! Small helpers over sqlx for the benchmark's own SQL.

use anyhow::{Context, Result};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

/// Where the server is.
#[derive(Debug, Clone)]
pub struct Server {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User (trust authentication).
    pub user: String,
    /// TLS: disable, prefer or require.
    pub sslmode: String,
}

impl Server {
    /// Connection URL for `db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://{}@{}:{}/{db}?sslmode={}&application_name=syncline-bench",
            self.user, self.host, self.port, self.sslmode
        )
    }

    /// A new connection to `db`.
    pub async fn connect(&self, db: &str) -> Result<PgConnection> {
        PgConnection::connect(&self.url(db))
            .await
            .with_context(|| format!("connecting to {}", self.url(db)))
    }
}

/// Runs one or more statements (simple query protocol).
pub async fn exec(conn: &mut PgConnection, sql: &str) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .with_context(|| format!("SQL failed: {sql}"))?;
    Ok(())
}

/// One text value (`NULL` as an empty string).
pub async fn text(conn: &mut PgConnection, sql: &str) -> Result<String> {
    let v: Option<String> = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .with_context(|| format!("SQL failed: {sql}"))?;
    Ok(v.unwrap_or_default())
}

/// One bigint value.
pub async fn int(conn: &mut PgConnection, sql: &str) -> Result<i64> {
    let v: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .with_context(|| format!("SQL failed: {sql}"))?;
    Ok(v.unwrap_or(0))
}

/// Single-quoted SQL literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
