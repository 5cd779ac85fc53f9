//! Child processes under measurement: wall time from spawn to exit, peak
//! resident memory (`VmHWM` from `/proc/<pid>/status`, polled every 10 ms
//! until the process is reaped; and the highest `RssAnon` polled, the part
//! that is not mapped files such as a search index's segments) and CPU time (`utime + stime` from
//! `/proc/<pid>/stat`), plus the JSON status lines `syncline run --json`
//! prints, each stamped with when it was read.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value as Json;

/// What the monitor thread has seen of a process.
#[derive(Debug, Default)]
struct Samples {
    /// Highest `VmHWM` seen, in KiB.
    peak_kb: AtomicU64,
    /// Highest `RssAnon` seen, in KiB.
    peak_anon_kb: AtomicU64,
    /// Latest `utime + stime`, in clock ticks.
    cpu_ticks: AtomicU64,
    /// Number of successful polls.
    polls: AtomicU64,
}

/// A running child process under measurement.
#[derive(Debug)]
pub struct Monitored {
    label: String,
    child: Child,
    start: Instant,
    lines_rx: Receiver<(Instant, Json)>,
    /// Status lines read so far: (seconds since spawn, line).
    lines: Vec<(f64, Json)>,
    samples: Arc<Samples>,
    stop: Arc<AtomicBool>,
    monitor: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
}

/// A finished process's figures.
#[derive(Debug, Clone)]
pub struct Finished {
    /// What it was (e.g. "snapshot").
    pub label: String,
    /// Spawn to exit, seconds.
    pub wall_secs: f64,
    /// Exit code (-1 when killed by a signal).
    pub exit_code: i32,
    /// Peak resident set (VmHWM), MiB.
    pub peak_rss_mb: f64,
    /// Highest anonymous resident memory polled (`RssAnon`: heap and
    /// stacks, not mapped files), MiB.
    pub peak_anon_mb: f64,
    /// User + system CPU, seconds (last poll before exit).
    pub cpu_secs: f64,
    /// Memory polls taken.
    pub polls: u64,
    /// Status lines: (seconds since spawn, line).
    pub lines: Vec<(f64, Json)>,
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// `VmHWM` and `RssAnon` of `/proc/<pid>/status`, in KiB.
fn read_memory_kb(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmHWM:")?, field("RssAnon:").unwrap_or(0)))
}

fn read_cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

impl Monitored {
    /// Spawns `program args` in `dir` with `env`; stdout is read as JSON
    /// lines, stderr goes to `log`.
    pub fn spawn(
        label: &str,
        program: &Path,
        args: &[&str],
        dir: &Path,
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<Monitored> {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines_rx) = channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                if let Ok(v) = serde_json::from_str::<Json>(&line)
                    && tx.send((now, v)).is_err()
                {
                    break;
                }
            }
        });
        let samples = Arc::new(Samples::default());
        let stop = Arc::new(AtomicBool::new(false));
        let monitor = {
            let samples = samples.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Some((kb, anon)) = read_memory_kb(pid) {
                        samples.peak_kb.fetch_max(kb, Ordering::SeqCst);
                        samples.peak_anon_kb.fetch_max(anon, Ordering::SeqCst);
                        samples.polls.fetch_add(1, Ordering::SeqCst);
                    }
                    if let Some(t) = read_cpu_ticks(pid) {
                        samples.cpu_ticks.fetch_max(t, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Ok(Monitored {
            label: label.to_owned(),
            child,
            start,
            lines_rx,
            lines: Vec::new(),
            samples,
            stop,
            monitor: Some(monitor),
            reader: Some(reader),
        })
    }

    /// Seconds since the process was spawned.
    pub fn elapsed_secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Waits until a status line satisfies `pred`; fails after `limit` or
    /// when the process ends first.
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Json) -> bool,
    ) -> Result<Json> {
        let deadline = Instant::now() + limit;
        if let Some((_, last)) = self.lines.last()
            && pred(last)
        {
            return Ok(last.clone());
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines_rx.recv_timeout(left) {
                Ok((at, v)) => {
                    let hit = pred(&v);
                    self.lines
                        .push((at.duration_since(self.start).as_secs_f64(), v.clone()));
                    if hit {
                        return Ok(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{}: timed out waiting for {what}; last status: {}",
                    self.label,
                    self.last_line()
                ),
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "{}: the process ended while waiting for {what}; last status: {}",
                    self.label,
                    self.last_line()
                ),
            }
        }
    }

    fn last_line(&self) -> String {
        self.lines
            .last()
            .map(|(_, l)| l.to_string())
            .unwrap_or_else(|| "none".into())
    }

    /// Waits for the process to end by itself.
    pub fn wait(mut self) -> Result<Finished> {
        let status = self.child.wait().context("waiting for the child")?;
        let end = Instant::now();
        Ok(self.collect(end, status.code().unwrap_or(-1)))
    }

    /// Sends SIGINT (Ctrl-C) and waits up to `limit` for the exit; kills
    /// the process after that.
    pub fn interrupt(mut self, limit: Duration) -> Result<Finished> {
        let ok = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .context("running kill -INT")?
            .success();
        if !ok {
            bail!("kill -INT {} failed", self.child.id());
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for the child")? {
                let end = Instant::now();
                return Ok(self.collect(end, status.code().unwrap_or(-1)));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let status = self.child.wait().context("waiting for the child")?;
                let end = Instant::now();
                let mut f = self.collect(end, status.code().unwrap_or(-1));
                f.exit_code = -2;
                return Ok(f);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn collect(&mut self, end: Instant, exit_code: i32) -> Finished {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        while let Ok((at, v)) = self.lines_rx.try_recv() {
            self.lines
                .push((at.duration_since(self.start).as_secs_f64(), v));
        }
        Finished {
            label: self.label.clone(),
            wall_secs: end.duration_since(self.start).as_secs_f64(),
            exit_code,
            peak_rss_mb: self.samples.peak_kb.load(Ordering::SeqCst) as f64 / 1024.0,
            peak_anon_mb: self.samples.peak_anon_kb.load(Ordering::SeqCst) as f64 / 1024.0,
            cpu_secs: self.samples.cpu_ticks.load(Ordering::SeqCst) as f64 / clock_ticks(),
            polls: self.samples.polls.load(Ordering::SeqCst),
            lines: std::mem::take(&mut self.lines),
        }
    }
}

impl Drop for Monitored {
    /// A failed benchmark must not leave a running process behind.
    fn drop(&mut self) {
        if self.monitor.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Load average (1, 5, 15 minutes) as `/proc/loadavg` shows it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Other compiler processes running now (a sign of concurrent builds).
pub fn busy_processes() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            let comm = comm.trim();
            if matches!(
                comm,
                "rustc" | "cargo" | "cc" | "cc1" | "cc1plus" | "ld" | "clippy-driver"
            ) {
                out.push(comm.to_owned());
            }
        }
    }
    out.sort();
    out
}
