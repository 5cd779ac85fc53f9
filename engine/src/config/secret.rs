//! Secrets in pipeline files are references, never values.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern every secret reference matches.
pub(crate) const SECRET_PATTERN: &str = r"^\$\{(env|keyring):[^}]+\}$";

/// A reference to a secret: `${env:NAME}` (an environment variable) or
/// `${keyring:service/account}` (the OS keyring). The file holds only the
/// reference; the value is looked up when a connector connects.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    reference: String,
}

/// How `${keyring:...}` references are looked up in this process: set once
/// by a front end that reaches the OS keyring.
static KEYRING_LOOKUP: OnceLock<KeyringLookup> = OnceLock::new();

/// Looks a keyring entry up by name; the error says why it is not there.
pub type KeyringLookup = fn(&str) -> Result<String, String>;

/// Lets [`Secret::resolve`] look `${keyring:name}` references up with
/// `lookup` (given `name`; its error says why the entry is not there).
/// The first call wins.
pub fn set_keyring_lookup(lookup: KeyringLookup) {
    let _ = KEYRING_LOOKUP.set(lookup);
}

/// Where a secret lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef<'a> {
    /// An environment variable.
    Env(&'a str),
    /// An OS keyring entry.
    Keyring(&'a str),
}

impl Secret {
    /// Parses `${env:NAME}` or `${keyring:...}`.
    pub fn parse(text: &str) -> Option<Secret> {
        let inner = text.strip_prefix("${")?.strip_suffix('}')?;
        let (scheme, name) = inner.split_once(':')?;
        let valid = matches!(scheme, "env" | "keyring")
            && !name.is_empty()
            && !name.contains('}')
            && (scheme != "env" || name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        valid.then(|| Secret {
            reference: text.to_owned(),
        })
    }

    /// Where the value lives.
    pub fn location(&self) -> SecretRef<'_> {
        let inner = &self.reference[2..self.reference.len() - 1];
        match inner.split_once(':') {
            Some(("keyring", name)) => SecretRef::Keyring(name),
            Some((_, name)) => SecretRef::Env(name),
            None => SecretRef::Env(inner),
        }
    }

    /// The reference as written in the file.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Looks the value up. The error says which variable or entry is missing.
    pub fn resolve(&self) -> Result<String, String> {
        match self.location() {
            SecretRef::Env(name) => std::env::var(name).map_err(|_| {
                format!(
                    "environment variable {name} is not set (referenced as {})",
                    self.reference
                )
            }),
            SecretRef::Keyring(name) => match KEYRING_LOOKUP.get() {
                Some(lookup) => lookup(name).map_err(|e| format!("keyring entry {name}: {e}")),
                None => Err(format!(
                    "keyring entry {name}: the OS keyring is reached through the desktop app; set an environment variable and use ${{env:NAME}} for headless runs"
                )),
            },
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.reference)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.reference)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Secret::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(
                "secrets are written as ${env:NAME} or ${keyring:service/account}, never as values",
            )
        })
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": SECRET_PATTERN,
            "description": "A reference to a secret: ${env:NAME} or ${keyring:service/account}.",
            "x-secret": true
        })
    }
}

/// Field names whose values are secrets wherever they appear.
pub(crate) fn looks_secret(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "credentials",
    ]
    .iter()
    .any(|w| f.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_literals_do_not() {
        let s = Secret::parse("${env:PG_PASSWORD}").expect("valid");
        assert_eq!(s.location(), SecretRef::Env("PG_PASSWORD"));
        assert!(Secret::parse("${keyring:syncline/pg}").is_some());
        assert!(Secret::parse("hunter2").is_none());
        assert!(Secret::parse("${env:}").is_none());
        assert!(Secret::parse("${env:A B}").is_none());
        assert!(Secret::parse("${vault:x}").is_none());
    }

    #[test]
    fn resolve_names_the_missing_variable() {
        let s = Secret::parse("${env:SYNCLINE_TEST_SURELY_UNSET}").expect("valid");
        let err = s.resolve().expect_err("unset");
        assert!(err.contains("SYNCLINE_TEST_SURELY_UNSET"), "{err}");
    }
}
