//! Whether SQL text is exactly one query, by DuckDB's own parser
//! (`json_serialize_sql`), without running any of it. Preparing SQL with
//! several statements runs all but the last, so SQL a person wrote is
//! checked with this before it is prepared.

use duckdb::Connection;

/// What DuckDB's parser makes of some SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// This many statements, every one a query (`SELECT`, `WITH ... SELECT`,
    /// `FROM ...`, `VALUES ...`).
    Queries(usize),
    /// A syntax error, at a byte offset of the text.
    SyntaxError {
        /// The parser's message.
        message: String,
        /// Byte offset.
        offset: usize,
    },
    /// A statement that is not a query (its kind is not given).
    NotQuery(String),
}

/// Parses `sql` on `conn`.
pub fn parse(conn: &Connection, sql: &str) -> duckdb::Result<Parsed> {
    let json: String = conn.query_row(
        "SELECT json_serialize_sql(CAST(? AS VARCHAR))",
        [sql],
        |r| r.get(0),
    )?;
    let v: serde_json::Value = match serde_json::from_str(&json) {
        Ok(v) => v,
        // Refused, as anything not known to be one query is.
        Err(e) => return Ok(Parsed::NotQuery(format!("its parse is unreadable: {e}"))),
    };
    if v["error"].as_bool() != Some(true) {
        return Ok(Parsed::Queries(
            v["statements"].as_array().map_or(0, Vec::len),
        ));
    }
    let message = v["error_message"]
        .as_str()
        .unwrap_or("unreadable SQL")
        .to_owned();
    if v["error_type"].as_str() == Some("parser") {
        // DuckDB counts characters.
        let chars = v["position"]
            .as_str()
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(0);
        let offset = sql.char_indices().nth(chars).map_or(sql.len(), |(i, _)| i);
        return Ok(Parsed::SyntaxError { message, offset });
    }
    Ok(Parsed::NotQuery(message))
}

/// Where the statement after the first one starts: after the first `;`
/// that ends exactly one query (DuckDB judges: a `;` inside a string or a
/// comment leaves a prefix that does not parse), else at the start.
pub fn next_statement(conn: &Connection, sql: &str) -> duckdb::Result<usize> {
    for (i, _) in sql.match_indices(';') {
        if parse(conn, &sql[..i])? == Parsed::Queries(1) {
            let rest = &sql[i + 1..];
            return Ok(i + 1 + (rest.len() - rest.trim_start().len()));
        }
    }
    Ok(sql.len() - sql.trim_start().len())
}

/// `Ok` when `sql` is one query; otherwise why not, in words, with the
/// byte offset it concerns.
pub fn one_query(conn: &Connection, sql: &str) -> duckdb::Result<Result<(), (String, usize)>> {
    Ok(match parse(conn, sql)? {
        Parsed::Queries(1) => Ok(()),
        Parsed::Queries(0) => Err(("the SQL is empty".into(), 0)),
        Parsed::Queries(_) => Err((
            "the SQL holds more than one statement".into(),
            next_statement(conn, sql)?,
        )),
        Parsed::SyntaxError { message, offset } => {
            Err((format!("Parser Error: {message}"), offset))
        }
        Parsed::NotQuery(message) => Err((
            format!(
                "only a query (SELECT, WITH ... SELECT) runs here; DuckDB reads another kind of statement ({message})"
            ),
            next_statement(conn, sql)?,
        )),
    })
}
