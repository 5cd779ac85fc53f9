//! The report: number formatting, statistics, the machine's load, and the
//! closing summary (the machine at the end, which targets were met, the
//! total time).

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::process;
use crate::run::Bench;

/// Targets the report checks.
pub const TARGET_SNAPSHOT_RATIO: f64 = 0.60;
pub const TARGET_STREAM_RATIO: f64 = 0.50;
pub const TARGET_P99_MS: f64 = 100.0;
pub const TARGET_RSS_MB: f64 = 300.0;
/// Changes/s into Redis against pipelined SETs of one client.
pub const TARGET_CACHE_RATIO: f64 = 0.50;
/// Documents/s into the search index against tantivy alone.
pub const TARGET_SEARCH_RATIO: f64 = 0.70;
/// Three targets at once against the slowest target alone.
pub const TARGET_FANOUT_RATIO: f64 = 0.80;

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

pub fn rate(n: u64, secs: f64) -> String {
    thousands(per_sec(n, secs).round() as u64)
}

/// The middle value (the lower middle of an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISSED" }
}

/// Other builds and the load average, to judge how quiet the machine was.
pub fn load_note() -> Json {
    let mut busy: BTreeMap<String, u64> = BTreeMap::new();
    for p in process::busy_processes() {
        *busy.entry(p).or_default() += 1;
    }
    json!({ "loadavg": process::loadavg(), "compilers_running": busy })
}

pub fn load_text(j: &Json) -> String {
    let busy = j["compilers_running"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!(
        "load avg {}{}",
        j["loadavg"].as_str().unwrap_or("?"),
        if busy.is_empty() {
            String::new()
        } else {
            format!("; running: {busy}")
        }
    )
}

impl Bench {
    /// Closes the report: the memory section, the machine's load at the
    /// end, which targets were met, and the total time.
    pub fn finish_report(&mut self) {
        self.memory();
        let end = load_note();
        self.text.push(format!(
            "\nTotal {:.0} s; at the end: {}",
            self.started.elapsed().as_secs_f64(),
            load_text(&end)
        ));
        if let Some(m) = self.report.get_mut("machine").and_then(Json::as_object_mut) {
            m.insert("at_end".into(), end);
        }
        let mut targets = Map::new();
        for key in [
            "snapshot",
            "streaming",
            "latency",
            "memory",
            "cache",
            "search",
            "fanout",
        ] {
            if let Some(v) = self.report.get(key).and_then(|v| v.get("met")) {
                targets.insert(key.into(), v.clone());
            }
        }
        self.report
            .insert("targets_met".into(), Json::Object(targets));
        self.report.insert(
            "total_secs".into(),
            json!(round3(self.started.elapsed().as_secs_f64())),
        );
    }
}
