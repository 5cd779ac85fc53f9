//! What the MySQL crate's tests share: a connection to the local MariaDB.

#![allow(clippy::unwrap_used)]

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// A connection as root to the local MariaDB, in `database` if given.
pub async fn connect(database: Option<&str>) -> Conn {
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .db_name(database)
        .prefer_socket(false);
    Conn::new(opts).await.unwrap()
}

/// Creates database `name` empty (dropping one left by an earlier run).
pub async fn fresh_database(name: &str) {
    let mut conn = connect(None).await;
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
        .await
        .unwrap();
    conn.query_drop(format!("CREATE DATABASE `{name}`"))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
}
