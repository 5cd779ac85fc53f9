//! Syncline Studio: the desktop shell. Each command is a few lines over
//! the application layer's desktop functions (`syncline_app::desktop`,
//! `syncline_app::lifecycle`); the engine's status stream reaches the
//! window through Tauri channels; errors cross as `{code, message}`
//! ([`Failure`]). The command contract is `src-tauri/CONTRACT.md`.
//!
//! Every path a command takes, and every local path of a pipeline it is
//! given, must lie in the [`PathScope`]: the studio's workspace folder and
//! the folders of what the user picked in a native dialog, which only the
//! commands here show (the window has no dialog or filesystem permission).
//!
//! Closing the window hides it: running pipelines go on, and the tray icon
//! shows the window again or quits (stopping every pipeline with a final
//! checkpoint).
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod bindings;

use std::path::PathBuf;

use serde_json::Value as Json;
use syncline_app::desktop::{
    self, CheckItem, DiscoveredTable, Failure, KindInfo, OpenedPipeline, PathScope, PreviewResult,
    Previews, Problem, QueryResult, RedisKeys, Rendered, RepairResult, ReplayReport, SampleInfo,
    SearchResult, TableInfo, TargetDeadLetters, VerifyResult,
};

use syncline_app::lifecycle::{PipelineHost, RunningPipeline};
use syncline_engine::status::PipelineStatus;
use tauri::ipc::Channel;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, State, WindowEvent};
use tauri_plugin_dialog::{DialogExt, FileDialogBuilder, FilePath};
use tokio::sync::{oneshot, watch};

type Reply<T> = Result<T, Failure>;

/// The folders the commands may use ([`PathScope`]).
type Scope<'a> = State<'a, PathScope>;

/// Rows a query returns when the window asks for no limit.
const DEFAULT_QUERY_LIMIT: usize = 100_000;

// ---- connectors and the wizard

#[tauri::command]
fn connector_kinds() -> Vec<KindInfo> {
    desktop::kinds()
}

#[tauri::command]
async fn create_sample(scope: Scope<'_>, dir: PathBuf) -> Reply<SampleInfo> {
    desktop::create_sample(scope.check(&dir)?).await
}

#[tauri::command]
async fn test_connection(
    scope: Scope<'_>,
    path: PathBuf,
    text: String,
    source: String,
) -> Reply<Vec<CheckItem>> {
    scope.check_pipeline(&path, &text)?;
    desktop::test_connection(&path, &text, &source).await
}

#[tauri::command]
async fn discover(
    scope: Scope<'_>,
    path: PathBuf,
    text: String,
    source: String,
) -> Reply<Vec<DiscoveredTable>> {
    scope.check_pipeline(&path, &text)?;
    desktop::discover(&path, &text, &source).await
}

#[tauri::command]
fn render_pipeline(draft: Json) -> Reply<Rendered> {
    desktop::render_pipeline(&draft)
}

#[tauri::command]
async fn validate_pipeline(scope: Scope<'_>, path: PathBuf, text: String) -> Reply<Vec<Problem>> {
    scope.check_pipeline(&path, &text)?;
    desktop::validate_pipeline(&path, text).await
}

#[tauri::command]
async fn open_pipeline(scope: Scope<'_>, path: PathBuf) -> Reply<OpenedPipeline> {
    scope.check(&path)?;
    desktop::open_pipeline(path).await
}

#[tauri::command]
async fn save_pipeline(scope: Scope<'_>, path: PathBuf, text: String) -> Reply<()> {
    scope.check_pipeline_target(&path, &text)?;
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
    scope: Scope<'_>,
    path: PathBuf,
    text: String,
    transform: String,
    sql: String,
    limit: Option<usize>,
    seed: Option<u64>,
) -> Reply<PreviewResult> {
    scope.check_pipeline(&path, &text)?;
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
    scope: Scope<'_>,
    path: PathBuf,
    on_status: Channel<desktop::PipelineStatus>,
) -> Reply<()> {
    scope.check_pipeline_file(&path)?;
    forward(runner.start(&path).await?, on_status);
    Ok(())
}

#[tauri::command]
async fn watch_pipeline(
    runner: State<'_, PipelineHost>,
    scope: Scope<'_>,
    path: PathBuf,
    on_status: Channel<desktop::PipelineStatus>,
) -> Reply<()> {
    scope.check(&path)?;
    forward(runner.watch(&path)?, on_status);
    Ok(())
}

#[tauri::command]
async fn stop_pipeline(
    runner: State<'_, PipelineHost>,
    scope: Scope<'_>,
    path: PathBuf,
) -> Reply<()> {
    scope.check(&path)?;
    runner.stop(&path).await
}

#[tauri::command]
async fn pause_pipeline(
    runner: State<'_, PipelineHost>,
    scope: Scope<'_>,
    path: PathBuf,
) -> Reply<()> {
    scope.check(&path)?;
    runner.pause(&path).await
}

#[tauri::command]
async fn resume_pipeline(
    runner: State<'_, PipelineHost>,
    scope: Scope<'_>,
    path: PathBuf,
) -> Reply<()> {
    scope.check_pipeline_file(&path)?;
    // Subscribers of the paused run keep their channel.
    runner.resume(&path).await.map(|_| ())
}

#[tauri::command]
async fn drop_pipeline(
    runner: State<'_, PipelineHost>,
    scope: Scope<'_>,
    path: PathBuf,
) -> Reply<()> {
    scope.check_pipeline_file(&path)?;
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
async fn list_tables(scope: Scope<'_>, database: PathBuf) -> Reply<Vec<TableInfo>> {
    desktop::list_tables(scope.check(&database)?).await
}

#[tauri::command]
async fn run_query(
    scope: Scope<'_>,
    database: PathBuf,
    sql: String,
    limit: Option<usize>,
) -> Reply<QueryResult> {
    let database = scope.check(&database)?;
    desktop::run_query(database, sql, limit.unwrap_or(DEFAULT_QUERY_LIMIT)).await
}

#[tauri::command]
async fn search_index(
    scope: Scope<'_>,
    path: PathBuf,
    text: String,
    target: String,
    query: String,
    limit: Option<usize>,
) -> Reply<SearchResult> {
    scope.check_pipeline(&path, &text)?;
    desktop::search_index(&path, text, target, query, limit.unwrap_or(100)).await
}

#[tauri::command]
async fn redis_keys(
    scope: Scope<'_>,
    path: PathBuf,
    text: String,
    target: String,
    table: Option<String>,
    limit: Option<usize>,
) -> Reply<RedisKeys> {
    scope.check_pipeline(&path, &text)?;
    desktop::redis_keys(&path, text, target, table, limit.unwrap_or(1000)).await
}

#[tauri::command]
async fn verify_pipeline(
    scope: Scope<'_>,
    path: PathBuf,
    text: String,
    running: bool,
) -> Reply<VerifyResult> {
    scope.check_pipeline(&path, &text)?;
    desktop::verify_pipeline(&path, text, running).await
}

#[tauri::command]
async fn repair_pipeline(
    runner: State<'_, PipelineHost>,
    scope: Scope<'_>,
    path: PathBuf,
    text: String,
) -> Reply<RepairResult> {
    scope.check_pipeline(&path, &text)?;
    let running = runner.is_running(&path);
    desktop::repair_pipeline(&path, text, running).await
}

#[tauri::command]
async fn dlq_list(scope: Scope<'_>, path: PathBuf, text: String) -> Reply<Vec<TargetDeadLetters>> {
    scope.check_pipeline(&path, &text)?;
    desktop::dlq_list(&path, text).await
}

#[tauri::command]
async fn dlq_replay(
    scope: Scope<'_>,
    path: PathBuf,
    text: String,
    target: Option<String>,
) -> Reply<Vec<ReplayReport>> {
    scope.check_pipeline(&path, &text)?;
    desktop::dlq_replay(&path, text, target.as_deref()).await
}

#[tauri::command]
async fn dlq_discard(
    scope: Scope<'_>,
    path: PathBuf,
    text: String,
    target: String,
    ids: Vec<u64>,
) -> Reply<()> {
    scope.check_pipeline(&path, &text)?;
    desktop::dlq_discard(&path, text, &target, &ids)
        .await
        .map(|_| ())
}

// ---- native dialogs: what the user picks here, the commands may use

/// Which native dialog [`pick`] shows.
#[derive(Clone, Copy)]
enum Dialog {
    /// Open a file: its folder joins the scope.
    Open,
    /// Save a file: its folder joins the scope.
    Save,
    /// Choose a folder: it joins the scope.
    Folder,
}

/// Shows a native dialog and waits for the user's answer (`None`:
/// cancelled); what was picked joins the scope.
async fn pick(
    scope: &PathScope,
    dialog: FileDialogBuilder<tauri::Wry>,
    kind: Dialog,
) -> Reply<Option<String>> {
    let (tx, rx) = oneshot::channel();
    let answer = move |picked: Option<FilePath>| {
        let _ = tx.send(picked);
    };
    match kind {
        Dialog::Open => dialog.pick_file(answer),
        Dialog::Save => dialog.save_file(answer),
        Dialog::Folder => dialog.pick_folder(answer),
    }
    let Some(picked) = rx.await.ok().flatten() else {
        return Ok(None);
    };
    let path = picked
        .into_path()
        .map_err(|e| Failure::io(format!("the dialog gave no local path: {e}")))?;
    match kind {
        Dialog::Folder => scope.grant(&path)?,
        Dialog::Open | Dialog::Save => scope.grant_file_folder(&path)?,
    }
    Ok(Some(path.display().to_string()))
}

#[tauri::command]
async fn pick_pipeline_file(app: AppHandle, scope: Scope<'_>) -> Reply<Option<String>> {
    let dialog = app
        .dialog()
        .file()
        .set_title("Open a pipeline file")
        .add_filter("Pipeline", &["toml"]);
    pick(&scope, dialog, Dialog::Open).await
}

#[tauri::command]
async fn pick_save_path(
    app: AppHandle,
    scope: Scope<'_>,
    default_path: Option<PathBuf>,
) -> Reply<Option<String>> {
    let mut dialog = app
        .dialog()
        .file()
        .set_title("Save the pipeline file")
        .add_filter("Pipeline", &["toml"]);
    // Where the window suggests, only inside the scope: a page cannot
    // steer the dialog to a folder the user never chose.
    let default_path = default_path.filter(|d| scope.check(d).is_ok());
    if let Some(default) = default_path {
        if let Some(dir) = default.parent().filter(|d| d.is_dir()) {
            dialog = dialog.set_directory(dir);
        }
        if let Some(name) = default.file_name() {
            dialog = dialog.set_file_name(name.to_string_lossy());
        }
    }
    pick(&scope, dialog, Dialog::Save).await
}

#[tauri::command]
async fn pick_folder(app: AppHandle, scope: Scope<'_>) -> Reply<Option<String>> {
    let dialog = app.dialog().file().set_title("Choose a folder");
    pick(&scope, dialog, Dialog::Folder).await
}

#[tauri::command]
async fn pick_database(app: AppHandle, scope: Scope<'_>) -> Reply<Option<String>> {
    let dialog = app.dialog().file().add_filter("DuckDB", &["duckdb", "db"]);
    pick(&scope, dialog, Dialog::Open).await
}

/// The studio's workspace folder, where new pipelines go.
#[tauri::command]
fn workspace_dir(scope: Scope<'_>) -> String {
    scope.workspace().display().to_string()
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
            let path = app.path();
            let workspace =
                PathScope::default_workspace(path.document_dir().ok(), path.home_dir().ok());
            app.manage(PathScope::new(workspace));
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
            verify_pipeline,
            repair_pipeline,
            dlq_list,
            dlq_replay,
            dlq_discard,
            pick_pipeline_file,
            pick_save_path,
            pick_folder,
            pick_database,
            workspace_dir,
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
