//! Target tables: created, and evolved as their source's schema changes.

use super::*;

impl Writer {
    pub(super) fn ensure_table(&mut self, schema: &Arc<TableSchema>) -> Result<(), DuckDbError> {
        if self.is_current(schema) {
            return Ok(());
        }
        if self.mode == WriteMode::Upsert && schema.key.is_empty() {
            return Err(DuckDbError::Schema {
                table: schema.id.to_string(),
                detail: "has no key, and upsert mode needs one: declare key = [...] for the table, or set mode = \"append\" or \"history\" on the target".into(),
            });
        }
        let table = format!("{}.{}", quote(&self.schema_name), quote(&schema.id.name));
        let columns: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), duckdb_type(&c.data_type)))
            .collect();
        let meta = if self.mode == WriteMode::History {
            format!("{HISTORY_COLUMNS}, ")
        } else {
            String::new()
        };
        self.conn
            .execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {table} ({meta}{})",
                columns.join(", ")
            ))
            .map_err(DuckDbError::sql(format!("creating {table}")))?;

        // Columns the source gained since the table was created.
        let existing: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?")
                .map_err(DuckDbError::sql("reading target columns"))?;
            let rows = stmt
                .query_map(params![self.schema_name, schema.id.name], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(DuckDbError::sql("reading target columns"))?;
            rows.collect::<Result<_, _>>()
                .map_err(DuckDbError::sql("reading target columns"))?
        };
        for c in schema
            .columns
            .iter()
            .filter(|c| !existing.contains(&c.name))
        {
            tracing::info!(table = %schema.id, column = %c.name, "adding column to target");
            self.conn
                .execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN {} {}",
                    quote(&c.name),
                    duckdb_type(&c.data_type)
                ))
                .map_err(DuckDbError::sql(format!(
                    "adding column {} to {table}",
                    c.name
                )))?;
        }
        if !self.fills.contains_key(&table) {
            let empty: bool = self
                .conn
                .query_row(
                    &format!("SELECT NOT EXISTS (SELECT 1 FROM {table})"),
                    [],
                    |r| r.get(0),
                )
                .map_err(DuckDbError::sql(format!(
                    "reading whether {table} is empty"
                )))?;
            self.fills.insert(
                table.clone(),
                if empty { Fill::Empty } else { Fill::Unknown },
            );
        }

        // The origin's length keeps `a_b`.`c` and `a`.`b_c` apart.
        let stage_name = format!(
            "_syncline_stage_{}_{}_{}",
            schema.id.origin.len(),
            schema.id.origin,
            schema.id.name
        );
        let mut stage_columns: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), stage_type(&c.data_type)))
            .collect();
        stage_columns.extend(schema.key.iter().enumerate().map(|(i, &k)| {
            format!(
                "{} {}",
                lookup_column(i),
                stage_type(&schema.columns[k].data_type)
            )
        }));
        self.conn
            .execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE {} (\"_syncline_seq\" BIGINT, \"_syncline_op\" VARCHAR, \"_syncline_unchanged\" VARCHAR, \"_syncline_bseq\" BIGINT, \"_syncline_commit\" TIMESTAMPTZ, {})",
                quote(&stage_name),
                stage_columns.join(", ")
            ))
            .map_err(DuckDbError::sql("creating the staging table"))?;
        self.targets.insert(
            schema.id.clone(),
            Target {
                table,
                table_name: schema.id.name.clone(),
                stage: format!("temp.main.{}", quote(&stage_name)),
                stage_name,
                schema: schema.clone(),
            },
        );
        Ok(())
    }
}
