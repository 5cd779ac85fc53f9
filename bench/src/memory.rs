//! Phase 5, memory: the peak resident set of every `syncline` process
//! (measured by `process`), reported once every phase has run.

use serde_json::{Value as Json, json};

use crate::process::Finished;
use crate::report::{TARGET_RSS_MB, round3, verdict};
use crate::run::Bench;

fn process_json(f: &Finished) -> Json {
    json!({
        "label": f.label,
        "wall_secs": round3(f.wall_secs),
        "exit_code": f.exit_code,
        "peak_rss_mb": round3(f.peak_rss_mb),
        "peak_anon_mb": round3(f.peak_anon_mb),
        "cpu_secs": round3(f.cpu_secs),
        "memory_polls": f.polls,
    })
}

impl Bench {
    /// The memory section of the report, over every process recorded.
    pub fn memory(&mut self) {
        let peak = self
            .processes
            .iter()
            .filter(|p| !p.label.starts_with("drop"))
            .map(|p| p.peak_rss_mb)
            .fold(0.0, f64::max);
        let list: Vec<Json> = self.processes.iter().map(process_json).collect();
        let met = !self.processes.is_empty() && peak < TARGET_RSS_MB;
        self.report.insert(
            "memory".into(),
            json!({
                "method": "VmHWM of /proc/<pid>/status polled every 10 ms until the process is reaped; anon: the highest RssAnon polled (not mapped files)",
                "processes": list,
                "peak_rss_mb": round3(peak),
                "target_mb": TARGET_RSS_MB,
                "met": met,
            }),
        );
        self.text.push(format!(
            "\n5. Peak memory (VmHWM polled every 10 ms; anon = highest RssAnon, without mapped files): {} -> max {peak:.0} MB (target < {TARGET_RSS_MB:.0} MB: {})",
            self.processes
                .iter()
                .map(|p| format!("{} {:.0} MB (anon {:.0})", p.label, p.peak_rss_mb, p.peak_anon_mb))
                .collect::<Vec<_>>()
                .join(", "),
            verdict(met)
        ));
    }
}
