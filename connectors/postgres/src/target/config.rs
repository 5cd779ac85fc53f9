//! Settings of a Postgres target.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use syncline_engine::config::{Secret, WriteMode};

use crate::connection::{Endpoint, SslMode};

/// A PostgreSQL database as a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresTargetConfig {
    /// Host name or address.
    #[serde(default = "crate::connection::default_host")]
    pub host: String,
    /// Port.
    #[serde(default = "crate::connection::default_port")]
    pub port: u16,
    /// Database name. It must exist.
    pub database: String,
    /// User. It needs CREATE on the schema (or on the database, when the
    /// schema does not exist yet).
    #[serde(default = "crate::connection::default_user")]
    pub user: String,
    /// Password, as a reference: `${env:NAME}` or `${keyring:service/account}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// TLS: `disable`, `prefer` or `require`.
    #[serde(default)]
    pub sslmode: SslMode,
    /// Postgres schema the tables (and Syncline's checkpoint and dead-letter
    /// tables) are written into. Created if missing.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// What this target receives: `source` (all its tables), `source.table`,
    /// or a transform name.
    pub inputs: Vec<String>,
    /// How changes are written.
    #[serde(default)]
    pub mode: WriteMode,
}

fn default_schema() -> String {
    "public".into()
}

impl PostgresTargetConfig {
    /// The connection settings.
    pub fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            host: &self.host,
            port: self.port,
            database: &self.database,
            user: &self.user,
            password: self.password.as_ref(),
            sslmode: self.sslmode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: PostgresTargetConfig =
            serde_json::from_value(serde_json::json!({"database": "dw", "inputs": ["pg"]}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str(), c.schema.as_str()),
            ("127.0.0.1", 5432, "postgres", "public")
        );
        assert_eq!(c.mode, WriteMode::Upsert);
        assert!(
            serde_json::from_value::<PostgresTargetConfig>(
                serde_json::json!({"database": "dw", "inputs": [], "path": "x"})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<PostgresTargetConfig>(
                serde_json::json!({"database": "dw", "inputs": [], "password": "hunter2"})
            )
            .is_err()
        );
    }
}
