//! Syncline Studio: the desktop shell. Each command is a few lines over
//! the application layer's desktop functions (`syncline_app::desktop`,
//! `syncline_app::lifecycle`); the engine's status stream reaches the
//! window through Tauri channels; errors cross as `{code, message}`
//! ([`Failure`]). The command contract is `src-tauri/CONTRACT.md`.
//!
//! Closing the window hides it: running pipelines go on, and the tray icon
//! shows the window again or quits (stopping every pipeline with a final
//! checkpoint).
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod bindings;

use std::path::PathBuf;

use serde_json::Value as Json;
use syncline_app::desktop::{
    self, CheckItem, DiscoveredTable, Failure, KindInfo, OpenedPipeline, PreviewResult, Previews,
    Problem, QueryResult, RedisKeys, Rendered, ReplayReport, SampleInfo, SearchResult, TableInfo,
    TargetDeadLetters,
};

use syncline_app::lifecycle::{PipelineHost, RunningPipeline};
use syncline_engine::status::PipelineStatus;
use tauri::ipc::Channel;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, State, WindowEvent};
use tokio::sync::watch;

type Reply<T> = Result<T, Failure>;

/// Rows a query returns when the window asks for no limit.
const DEFAULT_QUERY_LIMIT: usize = 100_000;

// ---- connectors and the wizard

#[tauri::command]
fn connector_kinds() -> Vec<KindInfo> {
    desktop::kinds()
}

#[tauri::command]
async fn create_sample(dir: PathBuf) -> Reply<SampleInfo> {
    desktop::create_sample(dir).await
}

#[tauri::command]
async fn test_connection(path: PathBuf, text: String, source: String) -> Reply<Vec<CheckItem>> {
    desktop::test_connection(&path, &text, &source).await
}

#[tauri::command]
async fn discover(path: PathBuf, text: String, source: String) -> Reply<Vec<DiscoveredTable>> {
    desktop::discover(&path, &text, &source).await
}

#[tauri::command]
fn render_pipeline(draft: Json) -> Reply<Rendered> {
    desktop::render_pipeline(&draft)
}

#[tauri::command]
async fn validate_pipeline(path: PathBuf, text: String) -> Reply<Vec<Problem>> {
    desktop::validate_pipeline(&path, text).await
}

#[tauri::command]
async fn open_pipeline(path: PathBuf) -> Reply<OpenedPipeline> {
    desktop::open_pipeline(path).await
}

#[tauri::command]
async fn save_pipeline(path: PathBuf, text: String) -> Reply<()> {
    desktop::save_pipeline(path, text).await
}

#[tauri::command]
async fn store_secret(name: String, value: String) -> Reply<String> {
    desktop::store_secret(name, value).await
}

// ---- preview

#[allow(clippy::too_many_arguments)]
#[tauri::command]
async fn preview_transform(
    previews: State<'_, Previews>,
    path: PathBuf,
    text: String,
    transform: String,
    sql: String,
    limit: Option<usize>,
    seed: Option<u64>,
) -> Reply<PreviewResult> {
    let limit = limit.unwrap_or(10_000);
    let seed = seed.unwrap_or(0);
    previews
        .run(&path, text, &transform, sql, limit, seed)
        .await
}

// ---- running

/// Sends every status snapshot to the window until it stops listening or
/// the pipeline is dropped.
fn forward(mut rx: watch::Receiver<PipelineStatus>, channel: Channel<desktop::PipelineStatus>) {
    tauri::async_runtime::spawn(async move {
        loop {
            let status = desktop::PipelineStatus::from(&*rx.borrow_and_update());
            if channel.send(status).is_err() || rx.changed().await.is_err() {
                break;
            }
        }
    });
}

#[tauri::command]
async fn start_pipeline(
    runner: State<'_, PipelineHost>,
    path: PathBuf,
    on_status: Channel<desktop::PipelineStatus>,
) -> Reply<()> {
    forward(runner.start(&path).await?, on_status);
    Ok(())
}

#[tauri::command]
async fn watch_pipeline(
    runner: State<'_, PipelineHost>,
    path: PathBuf,
    on_status: Channel<desktop::PipelineStatus>,
) -> Reply<()> {
    forward(runner.watch(&path)?, on_status);
    Ok(())
}

#[tauri::command]
async fn stop_pipeline(runner: State<'_, PipelineHost>, path: PathBuf) -> Reply<()> {
    runner.stop(&path).await
}

#[tauri::command]
async fn pause_pipeline(runner: State<'_, PipelineHost>, path: PathBuf) -> Reply<()> {
    runner.pause(&path).await
}

#[tauri::command]
async fn resume_pipeline(runner: State<'_, PipelineHost>, path: PathBuf) -> Reply<()> {
    // Subscribers of the paused run keep their channel.
    runner.resume(&path).await.map(|_| ())
}

#[tauri::command]
async fn drop_pipeline(runner: State<'_, PipelineHost>, path: PathBuf) -> Reply<()> {
    let removed = runner.drop_pipeline(&path).await?;
    tracing::info!(path = %path.display(), ?removed, "pipeline dropped");
    Ok(())
}

#[tauri::command]
fn running_pipelines(runner: State<'_, PipelineHost>) -> Vec<RunningPipeline> {
    runner.list()
}

// ---- data and dead letters

#[tauri::command]
async fn list_tables(database: PathBuf) -> Reply<Vec<TableInfo>> {
    desktop::list_tables(database).await
}

#[tauri::command]
async fn run_query(database: PathBuf, sql: String, limit: Option<usize>) -> Reply<QueryResult> {
    desktop::run_query(database, sql, limit.unwrap_or(DEFAULT_QUERY_LIMIT)).await
}

#[tauri::command]
async fn search_index(
    path: PathBuf,
    text: String,
    target: String,
    query: String,
    limit: Option<usize>,
) -> Reply<SearchResult> {
    desktop::search_index(&path, text, target, query, limit.unwrap_or(100)).await
}

#[tauri::command]
async fn redis_keys(
    path: PathBuf,
    text: String,
    target: String,
    table: Option<String>,
    limit: Option<usize>,
) -> Reply<RedisKeys> {
    desktop::redis_keys(&path, text, target, table, limit.unwrap_or(1000)).await
}

#[tauri::command]
async fn dlq_list(path: PathBuf, text: String) -> Reply<Vec<TargetDeadLetters>> {
    desktop::dlq_list(&path, text).await
}

#[tauri::command]
async fn dlq_replay(
    path: PathBuf,
    text: String,
    target: Option<String>,
) -> Reply<Vec<ReplayReport>> {
    desktop::dlq_replay(&path, text, target.as_deref()).await
}

#[tauri::command]
async fn dlq_discard(path: PathBuf, text: String, target: String, ids: Vec<u64>) -> Reply<()> {
    desktop::dlq_discard(&path, text, &target, &ids)
        .await
        .map(|_| ())
}

// ---- the app

fn show_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// Stops every pipeline gracefully, then exits.
fn quit(app: &AppHandle) {
    let runner = app.state::<PipelineHost>().inner().clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        runner.stop_all().await;
        app.exit(0);
    });
}

fn tray(app: &tauri::App) -> tauri::Result<()> {
    let show = MenuItem::with_id(app, "show", "Show Syncline Studio", true, None::<&str>)?;
    let quit_item = MenuItem::with_id(
        app,
        "quit",
        "Quit (stops running pipelines)",
        true,
        None::<&str>,
    )?;
    let menu = Menu::with_items(app, &[&show, &quit_item])?;
    let mut builder = TrayIconBuilder::with_id("main")
        .tooltip("Syncline Studio")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "show" => show_window(app),
            "quit" => quit(app),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    Ok(())
}

/// The same allocator as the `syncline` binary: pipelines run in this
/// process too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SYNCLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    syncline_app::secrets::install();

    let app = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .manage(PipelineHost::new())
        .manage(Previews::new())
        .setup(|app| {
            if let Err(e) = tray(app) {
                // No tray on this desktop: closing the window then quits.
                tracing::warn!(error = %e, "no tray icon");
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event
                && window.app_handle().tray_by_id("main").is_some()
            {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .invoke_handler(tauri::generate_handler![
            connector_kinds,
            create_sample,
            test_connection,
            discover,
            render_pipeline,
            validate_pipeline,
            open_pipeline,
            save_pipeline,
            store_secret,
            preview_transform,
            start_pipeline,
            watch_pipeline,
            stop_pipeline,
            pause_pipeline,
            resume_pipeline,
            drop_pipeline,
            running_pipelines,
            list_tables,
            run_query,
            search_index,
            redis_keys,
            dlq_list,
            dlq_replay,
            dlq_discard,
        ])
        .build(tauri::generate_context!());
    match app {
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("error: cannot start Syncline Studio: {e}");
            std::process::exit(1);
        }
    }
}
