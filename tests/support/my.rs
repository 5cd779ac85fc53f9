//! A throwaway MariaDB database per test, driven with the `mariadb` client.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How the `mariadb` client and `mariadb-admin` reach the test server.
pub const SERVER: [&str; 6] = ["-h", "127.0.0.1", "-P", "3306", "-u", "root"];

/// Runs `sql` in database `db`, failing the test on error.
pub fn exec_in(db: &str, sql: &str) {
    if let Err(e) = client(Some(db), sql) {
        panic!("SQL failed: {e}\n{sql}");
    }
}

fn client(db: Option<&str>, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new("mariadb");
    cmd.args(SERVER)
        .args(["-N", "-B", "--default-character-set=utf8mb4"]);
    if let Some(db) = db {
        cmd.arg(db);
    }
    let out = cmd
        .arg("-e")
        .arg(sql)
        .output()
        .map_err(|e| format!("mariadb: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A database created for one test and dropped when the test ends.
pub struct TestDb {
    /// Database name.
    pub name: String,
}

impl TestDb {
    /// Creates `sl_<prefix>_<pid>_<n>`.
    pub fn create(prefix: &str) -> TestDb {
        let name = format!(
            "sl_{prefix}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        client(None, &format!("CREATE DATABASE `{name}`")).unwrap();
        TestDb { name }
    }

    /// Runs SQL (several statements allowed), failing the test on error.
    pub fn exec(&self, sql: &str) {
        exec_in(&self.name, sql);
    }

    /// Runs SQL, returning the error text if it fails.
    pub fn try_exec(&self, sql: &str) -> Result<String, String> {
        client(Some(&self.name), sql)
    }

    /// Rows of a query, each as its tab-separated fields (`NULL` as the
    /// client prints it).
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        client(Some(&self.name), sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = client(None, &format!("DROP DATABASE IF EXISTS `{}`", self.name));
    }
}
