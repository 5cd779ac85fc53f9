//! The pipeline files the benchmark writes and the `syncline` processes
//! it runs on them.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::pg;
use crate::process::Monitored;
use crate::raw::RAW_SLOT;
use crate::run::Bench;

/// Pipeline of the snapshot and streaming tests (its slot and publication:
/// [`slot_of`]).
pub const PIPELINE: &str = "bench";
/// Pipeline of the latency test.
pub const LAT_PIPELINE: &str = "bench_lat";

/// The slot (and publication) of source `pg` of pipeline `pipeline`, found
/// by the owner record the source keeps in its publication's comment.
pub async fn slot_of(conn: &mut sqlx::PgConnection, pipeline: &str) -> Result<String> {
    let sql = format!(
        "SELECT string_agg(pubname, ',') FROM pg_publication
          WHERE obj_description(oid, 'pg_publication')::jsonb @> {}::jsonb",
        pg::literal(&format!(r#"{{"pipeline":"{pipeline}","source":"pg"}}"#))
    );
    let names = pg::text(conn, &sql).await?;
    match names
        .split(',')
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()[..]
    {
        [one] => Ok(one.to_owned()),
        ref found => {
            bail!("expected one publication owned by pipeline `{pipeline}`, found {found:?}")
        }
    }
}

impl Bench {
    pub(crate) fn source_block(&self, table: &str, extra: &[&str]) -> String {
        let mut s = format!(
            "[sources.pg]\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndatabase = \"{}\"\nsslmode = \"{}\"\n",
            self.args.host,
            self.args.port,
            self.args.user,
            self.db(),
            self.args.sslmode
        );
        for line in extra
            .iter()
            .copied()
            .chain(self.args.source_options.iter().map(String::as_str))
        {
            s.push_str(line);
            s.push('\n');
        }
        s.push_str(&format!("[[sources.pg.tables]]\nname = \"{table}\"\n"));
        s
    }

    /// Writes a pipeline file into the work dir.
    pub fn write_pipeline(
        &self,
        file: &str,
        name: &str,
        table: &str,
        extra: &[&str],
        target: &str,
        mode: &str,
    ) -> Result<PathBuf> {
        let text = format!(
            "name = \"{name}\"\n{}[targets.db]\nkind = \"duckdb\"\npath = \"{target}\"\ninputs = [\"pg\"]\nmode = \"{mode}\"\n",
            self.source_block(table, extra)
        );
        let path = self.dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Starts `syncline args...` in the work dir.
    pub fn syncline(&self, label: &str, args: &[&str], status_ms: u64) -> Result<Monitored> {
        Monitored::spawn(
            label,
            &self.syncline,
            args,
            &self.dir,
            &[
                ("SYNCLINE_LOG", "warn".to_owned()),
                ("SYNCLINE_STATUS_INTERVAL_MS", status_ms.to_string()),
            ],
            &self.log,
        )
    }

    /// `syncline drop <file>`: removes the pipeline's slot and publication.
    pub fn drop_pipeline(&mut self, file: &str) -> Result<()> {
        if !self.dir.join(file).exists() {
            return Ok(());
        }
        self.note(&format!("syncline drop {file}"));
        let f = self
            .syncline(&format!("drop {file}"), &["drop", file], 250)?
            .wait()?;
        self.record(&f);
        if f.exit_code != 0 {
            bail!("syncline drop {file} exited with {}", f.exit_code);
        }
        if file == "p.toml" {
            let server = self.server.clone();
            self.rt.block_on(async {
                let mut c = server.connect("postgres").await?;
                pg::exec(
                    &mut c,
                    &format!(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{RAW_SLOT}'"
                    ),
                )
                .await
            })?;
        }
        Ok(())
    }
}
