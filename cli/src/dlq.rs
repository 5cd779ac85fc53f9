//! `syncline dlq`: the dead-letter queue from the command line.

use std::process::ExitCode;

use anyhow::Result;

use crate::{DlqCommand, EXIT_FAILED, load};

pub async fn run(command: DlqCommand) -> Result<ExitCode> {
    let (path, target) = match &command {
        DlqCommand::List {
            pipeline, target, ..
        }
        | DlqCommand::Show {
            pipeline, target, ..
        }
        | DlqCommand::Replay {
            pipeline, target, ..
        }
        | DlqCommand::Discard {
            pipeline, target, ..
        } => (pipeline.clone(), target.clone()),
    };
    let p = match load(&path) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let target = target.as_deref();
    let result = match command {
        DlqCommand::List { json, .. } => list(&p, target, json).await,
        DlqCommand::Show { ids, .. } => show(&p, target, &ids).await,
        DlqCommand::Replay { ids, .. } => {
            replay(&p, target, (!ids.is_empty()).then_some(ids.as_slice())).await
        }
        DlqCommand::Discard { ids, all, .. } => {
            if ids.is_empty() && !all {
                eprintln!("name the rows to discard (ids from `syncline dlq list`), or --all");
                return Ok(ExitCode::from(crate::EXIT_INVALID));
            }
            let chosen = (!all).then_some(ids.as_slice());
            match syncline_app::dlq::discard(&p, target, chosen).await {
                Ok(done) => {
                    for (name, n) in done {
                        println!("target {name}: {n} row(s) discarded");
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error [{}]: {}", e.kind().code(), e.chain());
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.replace(['\n', '\r'], " ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

async fn list(
    p: &syncline_app::Pipeline,
    target: Option<&str>,
    json: bool,
) -> syncline_engine::Result<()> {
    let all = syncline_app::dlq::list(p, target).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).unwrap_or_else(|_| "[]".into())
        );
        return Ok(());
    }
    for t in &all {
        println!("target {}: {} kept row(s)", t.target, t.rows.len());
        if !t.rows.is_empty() {
            println!(
                "  {:>6}  {:<9}  {:<20}  {:<10}  reason",
                "id", "stage", "table", "replayable"
            );
        }
        for r in &t.rows {
            println!(
                "  {:>6}  {:<9}  {:<20}  {:<10}  {}",
                r.id,
                r.stage.as_str(),
                one_line(&r.table, 20),
                if r.kept.is_some() { "yes" } else { "no" },
                one_line(&r.reason, 80)
            );
        }
    }
    Ok(())
}

async fn show(
    p: &syncline_app::Pipeline,
    target: Option<&str>,
    ids: &[u64],
) -> syncline_engine::Result<()> {
    let all = syncline_app::dlq::list(p, target).await?;
    let mut found = 0;
    for t in &all {
        for r in t.rows.iter().filter(|r| ids.contains(&r.id)) {
            found += 1;
            println!("target {} · row {}", t.target, r.id);
            println!("  stage:    {}", r.stage.as_str());
            println!("  source:   {} (position {})", r.source, r.seq);
            println!("  table:    {}", r.table);
            match r.line {
                Some(line) => println!("  origin:   {}:{line}", r.origin),
                None => println!("  origin:   {}", r.origin),
            }
            println!("  kept at:  {}", r.recorded_at.to_rfc3339());
            println!("  reason:   {}", r.reason);
            println!("  row:      {}", r.raw);
            match &r.kept {
                Some(k) => println!(
                    "  replay:   {:?} of {}{}",
                    k.op,
                    k.table,
                    k.transform
                        .as_ref()
                        .map(|t| format!(" through transform {t}"))
                        .unwrap_or_default()
                ),
                None => println!("  replay:   not replayable; fix the record at its origin"),
            }
        }
    }
    if found == 0 {
        return Err(syncline_engine::Error::new(
            syncline_engine::ErrorKind::Config,
            format!("no kept row with id {ids:?}; `syncline dlq list` shows them"),
        ));
    }
    Ok(())
}

async fn replay(
    p: &syncline_app::Pipeline,
    target: Option<&str>,
    ids: Option<&[u64]>,
) -> syncline_engine::Result<()> {
    let reports = syncline_app::dlq::replay(p, target, ids).await?;
    for r in &reports {
        println!(
            "target {}: {} replayed, {} superseded, {} still failing, {} not replayable",
            r.target,
            r.replayed.len(),
            r.superseded.len(),
            r.failed.len(),
            r.not_replayable.len()
        );
        for (id, reason) in &r.failed {
            println!("  row {id}: {}", one_line(reason, 100));
        }
    }
    Ok(())
}
