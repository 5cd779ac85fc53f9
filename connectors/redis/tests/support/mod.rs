//! A namespace of keys on the local Redis for one test: every key under a
//! prefix of its own, removed when the test ends.

#![allow(dead_code)]

use redis::aio::MultiplexedConnection;
use syncline_engine::config::WriteMode;
use syncline_redis::RedisTargetConfig;

/// The Redis the tests use.
pub fn url() -> String {
    std::env::var("SYNCLINE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// Keys under `<name>_<random>:`, deleted on drop.
pub struct Namespace {
    pub prefix: String,
}

impl Namespace {
    pub fn new(name: &str) -> Self {
        Namespace {
            prefix: format!("{name}_{:08x}:", fastrand::u32(..)),
        }
    }

    /// A target config writing under this namespace.
    pub fn config(&self, mode: WriteMode) -> RedisTargetConfig {
        Self::config_for(&url(), &self.prefix, mode)
    }

    pub fn config_for(url: &str, prefix: &str, mode: WriteMode) -> RedisTargetConfig {
        RedisTargetConfig {
            url: url.into(),
            password: None,
            prefix: prefix.into(),
            inputs: vec!["src".into()],
            mode,
            format: Default::default(),
            tables: Default::default(),
        }
    }

    /// `key` under the namespace.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn conn(&self) -> MultiplexedConnection {
        redis::Client::open(url())
            .unwrap_or_else(|e| panic!("{e}"))
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connecting to Redis at {}: {e}", url()))
    }

    /// Every key of the namespace, sorted.
    pub fn keys(&self) -> Vec<String> {
        let Ok(client) = redis::Client::open(url()) else {
            return Vec::new();
        };
        let Ok(mut conn) = client.get_connection() else {
            return Vec::new();
        };
        let mut keys: Vec<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(format!("{}*", self.prefix))
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)
            .map(|i| i.filter_map(Result::ok).collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let keys = self.keys();
        if keys.is_empty() {
            return;
        }
        if let Ok(client) = redis::Client::open(url())
            && let Ok(mut conn) = client.get_connection()
        {
            for chunk in keys.chunks(500) {
                let _: Result<u64, _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
            }
        }
    }
}
