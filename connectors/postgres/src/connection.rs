//! Reaching a server: the one place the source and the target turn their
//! connection settings into connections.
//!
//! Both configs keep their own `host`, `port`, `database`, `user`,
//! `password` and `sslmode` fields (each is a `deny_unknown_fields` struct
//! of its own in the pipeline file, so they cannot share a flattened one)
//! and lend them out as an [`Endpoint`]. Every session is set up the same
//! way:
//!
//! | setting            | value      | why                                        |
//! |--------------------|------------|--------------------------------------------|
//! | `TimeZone`         | `UTC`      | `timestamptz` text carries `+00`           |
//! | `DateStyle`        | `ISO`      | dates as text are `YYYY-MM-DD`             |
//! | `IntervalStyle`    | `postgres` | intervals as text read back the same       |
//! | `application_name` | `syncline` | Syncline's sessions in `pg_stat_activity`  |
//!
//! The source reads values in Postgres's binary format, so these settings
//! matter to it only where text crosses the wire: the cursor values of
//! polled tables, read as text and cast back, in the same session settings.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions as _, Connection as _};
use syncline_engine::config::Secret;

use crate::error::PgError;

/// How Syncline's sessions name themselves (`application_name`).
pub const APPLICATION_NAME: &str = "syncline";

/// Settings of every session (see the module's table).
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO"),
    ("IntervalStyle", "postgres"),
];

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// TLS use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SslMode {
    /// Never.
    Disable,
    /// When the server offers it.
    #[default]
    Prefer,
    /// Always; fail otherwise.
    Require,
}

impl SslMode {
    /// libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
        }
    }

    fn driver(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
        }
    }
}

/// The connection settings of a source or target config, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// Host name or address.
    pub host: &'a str,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: &'a str,
    /// User.
    pub user: &'a str,
    /// Password reference, looked up when connecting.
    pub password: Option<&'a Secret>,
    /// TLS use.
    pub sslmode: SslMode,
}

impl Endpoint<'_> {
    /// `postgres://user@host:port/database`, for messages. Never holds the
    /// password.
    pub fn describe(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user,
            url_host(self.host),
            self.port,
            self.database
        )
    }

    /// Options for an ordinary (not replication) connection. The password
    /// is looked up here.
    pub fn connect_options(&self) -> Result<PgConnectOptions, PgError> {
        let mut o = PgConnectOptions::new_without_pgpass()
            .host(self.host.trim_start_matches('[').trim_end_matches(']'))
            .port(self.port)
            .username(self.user)
            .database(self.database)
            .application_name(APPLICATION_NAME)
            .ssl_mode(self.sslmode.driver())
            .options(SESSION_SETTINGS.iter().copied())
            .disable_statement_logging();
        if let Some(password) = self.password()? {
            o = o.password(&password);
        }
        Ok(o)
    }

    /// Opens one connection, giving up after [`CONNECT_TIMEOUT`].
    pub async fn connect(self) -> Result<PgConnection, PgError> {
        let opts = self.connect_options()?;
        let failed = |source| PgError::Connect {
            target: self.describe(),
            source,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(source)) => Err(failed(source)),
            Err(_) => Err(failed(sqlx::Error::PoolTimedOut)),
        }
    }

    /// The URL of a logical replication connection (`replication=database`).
    pub(crate) fn replication_url(&self) -> Result<String, PgError> {
        let password = match self.password()? {
            Some(p) => format!(":{}", percent_encode(&p)),
            None => String::new(),
        };
        Ok(format!(
            "postgresql://{}{password}@{}:{}/{}?replication=database&sslmode={}&application_name={APPLICATION_NAME}",
            percent_encode(self.user),
            url_host(self.host),
            self.port,
            percent_encode(self.database),
            self.sslmode.as_str()
        ))
    }

    fn password(&self) -> Result<Option<String>, PgError> {
        self.password
            .map(|s| s.resolve().map_err(PgError::Secret))
            .transpose()
    }
}

/// `host` as a URL's authority holds it: an IPv6 address in brackets (a
/// bare `::1` would read as host `:` and port `:1`).
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Default `host` of both configs.
pub(crate) fn default_host() -> String {
    "127.0.0.1".into()
}

/// Default `port` of both configs.
pub(crate) fn default_port() -> u16 {
    5432
}

/// Default `user` of both configs.
pub(crate) fn default_user() -> String {
    "postgres".into()
}

#[cfg(test)]
mod tests {
    use syncline_engine::ErrorKind;

    use super::*;

    fn endpoint(password: Option<&Secret>) -> Endpoint<'_> {
        Endpoint {
            host: "db.example",
            port: 6543,
            database: "shop floor",
            user: "sync@er",
            password,
            sslmode: SslMode::Require,
        }
    }

    #[test]
    fn every_session_gets_the_same_settings() {
        let o = endpoint(None).connect_options().expect("options");
        assert_eq!(
            o.get_options(),
            Some("-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres")
        );
        assert_eq!(o.get_application_name(), Some("syncline"));
        assert_eq!(
            (
                o.get_host(),
                o.get_port(),
                o.get_username(),
                o.get_database()
            ),
            ("db.example", 6543, "sync@er", Some("shop floor"))
        );
        assert!(matches!(o.get_ssl_mode(), PgSslMode::Require));
    }

    #[test]
    fn descriptions_and_urls_never_show_an_unresolved_password() {
        let secret = Secret::parse("${env:SYNCLINE_TEST_UNSET_PASSWORD_VARIABLE}").expect("ref");
        let e = endpoint(Some(&secret));
        assert_eq!(
            e.describe(),
            "postgres://sync@er@db.example:6543/shop floor"
        );
        let err = e.connect_options().expect_err("unset variable");
        assert!(matches!(err, PgError::Secret(_)), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Precondition);
        assert!(err.to_string().starts_with("password: "), "{err}");
        assert!(e.replication_url().is_err());
    }

    #[test]
    fn an_ipv6_host_is_bracketed_in_urls() {
        let e = Endpoint {
            host: "::1",
            ..endpoint(None)
        };
        assert_eq!(
            e.replication_url().expect("url"),
            "postgresql://sync%40er@[::1]:6543/shop%20floor?replication=database&sslmode=require&application_name=syncline"
        );
        assert_eq!(e.describe(), "postgres://sync@er@[::1]:6543/shop floor");
        let bracketed = Endpoint {
            host: "[::1]",
            ..endpoint(None)
        };
        assert_eq!(
            bracketed.describe(),
            "postgres://sync@er@[::1]:6543/shop floor"
        );
    }

    #[test]
    fn replication_urls_encode_names() {
        assert_eq!(
            endpoint(None).replication_url().expect("url"),
            "postgresql://sync%40er@db.example:6543/shop%20floor?replication=database&sslmode=require&application_name=syncline"
        );
    }
}
