//! Which pipeline a replication slot and its publication belong to.
//!
//! A slot's name carries a hash of the pipeline's identity (a random id the
//! pipeline keeps in its state folder), so two pipelines named alike, in
//! two folders or on two machines, never share one. The publication of the
//! same name records its owner in its comment: a source creates, adopts
//! (an unclaimed publication of its own name), resumes on, or drops only a
//! slot whose publication names it as the owner.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnection;

use crate::error::PgError;
use crate::introspect::{literal, quote};

/// The owner record, kept as the publication's comment (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The pipeline's identity: random, kept in its state folder.
    pub syncline_pipeline: String,
    /// The pipeline's name, for people reading the comment.
    pub pipeline: String,
    /// The source's name in that pipeline.
    pub source: String,
}

/// What the publication of a slot's name says of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Claim {
    /// No publication of that name.
    Free,
    /// A publication with no owner record (created by hand, or by a version
    /// of Syncline that did not record owners).
    Unclaimed,
    /// This pipeline's.
    Ours,
    /// Another pipeline's (or a comment that is not an owner record).
    Theirs(String),
}

impl Owner {
    /// What `publication` says of its owner, compared with `self`.
    pub(super) async fn claim_of(
        &self,
        conn: &mut PgConnection,
        publication: &str,
    ) -> Result<Claim, PgError> {
        let comment: Option<Option<String>> = sqlx::query_scalar(
            "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1",
        )
        .bind(publication)
        .fetch_optional(conn)
        .await
        .map_err(PgError::query("reading the publication's owner"))?;
        Ok(match comment {
            None => Claim::Free,
            Some(None) => Claim::Unclaimed,
            Some(Some(text)) => match serde_json::from_str::<Owner>(&text) {
                Ok(o) if o.syncline_pipeline == self.syncline_pipeline => Claim::Ours,
                Ok(o) => Claim::Theirs(format!(
                    "pipeline `{}` (source `{}`, id {})",
                    o.pipeline, o.source, o.syncline_pipeline
                )),
                Err(_) => Claim::Theirs(format!("whoever commented it `{text}`")),
            },
        })
    }

    /// Records `self` as the owner of `publication`.
    pub(super) async fn record(
        &self,
        conn: &mut PgConnection,
        publication: &str,
    ) -> Result<(), PgError> {
        let json = serde_json::to_string(self).map_err(|e| PgError::State(e.to_string()))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "COMMENT ON PUBLICATION {} IS {}",
            quote(publication),
            literal(&json)
        )))
        .execute(conn)
        .await
        .map_err(PgError::query("recording the publication's owner"))?;
        Ok(())
    }

    /// Fails unless `publication` is free, unclaimed or ours.
    pub(super) async fn ensure_not_theirs(
        &self,
        conn: &mut PgConnection,
        publication: &str,
    ) -> Result<Claim, PgError> {
        match self.claim_of(conn, publication).await? {
            Claim::Theirs(who) => Err(PgError::Precondition(format!(
                "publication and replication slot {publication} belong to {who}, not to this pipeline (id {}); a slot read by two pipelines loses changes for both, so this one will not touch it. If that pipeline is gone, run `syncline drop` on it (or drop the slot and publication by hand)",
                self.syncline_pipeline
            ))),
            claim => Ok(claim),
        }
    }
}
