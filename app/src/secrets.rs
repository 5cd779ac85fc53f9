//! Secrets in the OS keyring (the Secret Service on Linux): the desktop
//! studio stores what is typed into a form's secret field here and writes
//! only the `${keyring:name}` reference into the pipeline file. Where no
//! keyring service runs (a headless machine, CI), storing fails with a plain
//! message and `${env:NAME}` references remain the way.
//!
//! A name is `service/account`, or just `account` in the `syncline` service.

use std::sync::Once;

/// The keyring service names without a `/` are stored under.
const DEFAULT_SERVICE: &str = "syncline";

fn entry(name: &str) -> Result<keyring::Entry, String> {
    let (service, account) = name.split_once('/').unwrap_or((DEFAULT_SERVICE, name));
    if account.is_empty() || service.is_empty() {
        return Err(format!("`{name}` is not a keyring name (service/account)"));
    }
    keyring::Entry::new(service, account).map_err(plain)
}

fn plain(e: keyring::Error) -> String {
    match e {
        keyring::Error::NoDefaultStore | keyring::Error::PlatformFailure(_) => {
            format!(
                "no OS keyring is available here ({e}); reference an environment variable instead: ${{env:NAME}}"
            )
        }
        keyring::Error::NoEntry => "no such keyring entry".to_owned(),
        other => other.to_string(),
    }
}

/// Stores `value` under `name` and returns the reference to write into the
/// file, `${keyring:name}`. Only in the `syncline` service: an entry of
/// another application's service is never overwritten (a pipeline file may
/// still reference one, to read it).
pub fn store(name: &str, value: &str) -> Result<String, String> {
    if name.is_empty() || name.contains('}') {
        return Err(format!(
            "`{name}` cannot name a keyring entry (use letters, digits, `-`, `_` and one `/`)"
        ));
    }
    if let Some((service, _)) = name.split_once('/')
        && service != DEFAULT_SERVICE
    {
        return Err(format!(
            "`{name}` names an entry of the keyring service `{service}`, which may belong to another application: the studio stores secrets only under `{DEFAULT_SERVICE}` (name it without a `/`, or `{DEFAULT_SERVICE}/...`)"
        ));
    }
    entry(name)?.set_password(value).map_err(plain)?;
    Ok(format!("${{keyring:{name}}}"))
}

/// The value stored under `name`.
pub fn lookup(name: &str) -> Result<String, String> {
    entry(name)?.get_password().map_err(plain)
}

/// Lets `${keyring:..}` references in pipeline files resolve through the OS
/// keyring in this process.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| syncline_engine::config::set_keyring_lookup(lookup));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_secret_resolves_or_storing_says_why_not() {
        install();
        let name = format!("syncline/test-secret-{}", std::process::id());
        match store(&name, "s3cret") {
            Ok(reference) => {
                assert_eq!(reference, format!("${{keyring:{name}}}"));
                let secret =
                    syncline_engine::config::Secret::parse(&reference).expect("a reference");
                assert_eq!(secret.resolve().as_deref(), Ok("s3cret"));
                if let Ok(e) = entry(&name) {
                    let _ = e.delete_credential();
                }
            }
            // No Secret Service here: the message says what to do instead.
            Err(message) => assert!(message.contains("${env:NAME}"), "{message}"),
        }
        assert!(store("", "x").is_err());
    }

    #[test]
    fn another_services_entry_is_never_written() {
        // Refused before the keyring is touched, whether one runs or not.
        let refused = store("Chrome Safe Storage/Chrome", "overwritten")
            .expect_err("another service is refused");
        assert!(
            refused.contains("only under `syncline`"),
            "the refusal says where secrets go: {refused}"
        );
    }
}
