//! One DuckDB instance per database file in this process.
//!
//! DuckDB refuses to open one file twice in one process, so the target
//! writer and anything else that reads the same file while a pipeline runs
//! (the desktop studio's data view, dead-letter commands) share it: each
//! gets its own connection to the one instance. The instance closes (and
//! the file is free for other processes again) when its last connection is
//! dropped.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use duckdb::Connection;

struct Instance {
    /// A connection kept only to hand out others to the same instance.
    root: Connection,
    users: usize,
}

static OPEN: Mutex<Option<HashMap<PathBuf, Instance>>> = Mutex::new(None);

/// A connection to the process's one instance of a database file. Use it as
/// a [`Connection`].
pub struct SharedConnection {
    conn: Connection,
    key: PathBuf,
}

impl std::fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConnection")
            .field("path", &self.key)
            .finish()
    }
}

/// The key of a file: its canonical path (the folder's, for a file not
/// created yet), so two spellings of one file share an instance.
fn key(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|d| d.join(name))
            .unwrap_or(absolute.clone()),
        _ => absolute,
    }
}

/// A new connection to the database file at `path` (created if missing),
/// sharing the instance other connections of this process have open.
pub fn connect(path: &Path) -> duckdb::Result<SharedConnection> {
    let key = key(path);
    let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    let open = open.get_or_insert_with(HashMap::new);
    let conn = match open.get_mut(&key) {
        Some(instance) => {
            let conn = instance.root.try_clone()?;
            instance.users += 1;
            conn
        }
        None => {
            let root = Connection::open(&key)?;
            // A target and the studio's data view need nothing outside the
            // database file (and its WAL and spill files): no reader of
            // other files, no extension. It cannot be turned back on.
            root.execute_batch(
                "SET enable_external_access = false;
                 SET autoinstall_known_extensions = false;
                 SET autoload_known_extensions = false;",
            )?;
            let conn = root.try_clone()?;
            open.insert(key.clone(), Instance { root, users: 1 });
            conn
        }
    };
    Ok(SharedConnection { conn, key })
}

/// Whether this process has the database file at `path` open.
pub fn is_open(path: &Path) -> bool {
    let key = key(path);
    OPEN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_some_and(|open| open.contains_key(&key))
}

impl Deref for SharedConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for SharedConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Drop for SharedConnection {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = open.as_mut()
            && let Some(instance) = open.get_mut(&self.key)
        {
            instance.users -= 1;
            if instance.users == 0 {
                // The instance closes once this connection is gone too.
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_share_one_instance_until_the_last_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.duckdb");
        let writer = connect(&path).expect("opens");
        writer
            .execute_batch("CREATE TABLE t AS SELECT 42 AS x")
            .expect("writes");
        // Another spelling of the same file gets the same instance: a
        // second `Connection::open` in this process would be refused.
        let reader = connect(&dir.path().join(".").join("a.duckdb")).expect("shares");
        let x: i32 = reader
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .expect("reads");
        assert_eq!(x, 42);
        drop(writer);
        assert!(is_open(&path));
        drop(reader);
        assert!(!is_open(&path));
        // Closed: the file can be opened on its own again.
        let again = Connection::open(&path).expect("free again");
        let x: i32 = again
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .expect("reads");
        assert_eq!(x, 42);
    }
}
