//! Which files the studio's commands may touch: the studio's workspace
//! folder, and the folders of what the user chose in a native dialog the
//! shell itself showed (the web content cannot show one, nor answer it).
//! Every path a command takes, and every local path a pipeline it is given
//! names (a files source's folder, a DuckDB file, a search index's folder),
//! must lie inside one of them; anything else is refused with the code
//! `outside_scope` and a message that says how to allow it. So a page that
//! got script into the window still cannot make the studio read, write or
//! delete a file the user never pointed it at.
//!
//! Paths are compared after symbolic links are resolved (as far as the path
//! exists), so a link inside the workspace that points elsewhere does not
//! widen it; a part of a path that does not exist yet may not hold `..`.
//! Grants last as long as the app runs.

use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use super::failure::{Failure, FailureCode};

/// The folders the studio's commands may use. Shared by every command (one
/// per app).
#[derive(Debug)]
pub struct PathScope {
    workspace: PathBuf,
    granted: Mutex<Vec<PathBuf>>,
}

/// How the scope shows a path in messages: `~` for the home folder.
fn shown(path: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
        && let Ok(rest) = path.strip_prefix(&home)
        && !home.as_os_str().is_empty()
    {
        return Path::new("~").join(rest).display().to_string();
    }
    path.display().to_string()
}

impl PathScope {
    /// A scope holding `workspace` (the studio's own folder: new pipelines
    /// and the sample go there; made if missing) and nothing else yet.
    pub fn new(workspace: PathBuf) -> Self {
        if let Err(e) = std::fs::create_dir_all(&workspace) {
            tracing::warn!(folder = %workspace.display(), error = %e, "cannot make the workspace folder");
        }
        let workspace = resolve(&workspace).unwrap_or(workspace);
        PathScope {
            workspace,
            granted: Mutex::new(Vec::new()),
        }
    }

    /// The workspace folder: `SYNCLINE_WORKSPACE` when set, else
    /// `Syncline` in the user's documents folder (`documents`), else in
    /// `home`.
    pub fn default_workspace(documents: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
        if let Some(dir) = std::env::var_os("SYNCLINE_WORKSPACE").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        documents
            .or(home)
            .unwrap_or_else(std::env::temp_dir)
            .join("Syncline")
    }

    /// The workspace folder.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Lets the commands use `folder` and everything under it: the user
    /// chose it (or a file in it) in a native dialog.
    pub fn grant(&self, folder: &Path) -> Result<(), Failure> {
        let folder = resolve(folder)?;
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        if !granted.iter().any(|g| folder.starts_with(g)) {
            granted.retain(|g| !g.starts_with(&folder));
            tracing::info!(folder = %folder.display(), "folder allowed");
            granted.push(folder);
        }
        Ok(())
    }

    /// Lets the commands use the folder of `file`, which the user chose in
    /// a native dialog (a pipeline's paths are relative to its folder).
    pub fn grant_file_folder(&self, file: &Path) -> Result<(), Failure> {
        match file.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(folder) => self.grant(folder),
            None => Err(refused(file, "it names no folder")),
        }
    }

    /// `path`, with its links resolved, when the commands may use it;
    /// otherwise an `outside_scope` failure naming it.
    pub fn check(&self, path: &Path) -> Result<PathBuf, Failure> {
        let resolved = resolve(path)?;
        if self.allows(&resolved) {
            Ok(resolved)
        } else {
            Err(self.outside(path, None))
        }
    }

    /// Checks the pipeline file `path` and every local path its text names
    /// (see [`local_paths`]). Text that does not parse as TOML names no
    /// path: the command itself reports it, and nothing runs.
    pub fn check_pipeline(&self, path: &Path, text: &str) -> Result<PathBuf, Failure> {
        let resolved = self.check(path)?;
        let base = resolved.parent().unwrap_or(Path::new("/"));
        for (field, local) in local_paths(path, text) {
            let full = base.join(&local);
            let inside = resolve(&full).map(|r| self.allows(&r)).unwrap_or(false);
            if !inside {
                return Err(self.outside(&full, Some(&field)));
            }
        }
        Ok(resolved)
    }

    /// Checks the pipeline file `path` and the local paths of what it
    /// holds on disk (for the commands that take a saved pipeline).
    pub fn check_pipeline_file(&self, path: &Path) -> Result<PathBuf, Failure> {
        let resolved = self.check(path)?;
        match std::fs::read_to_string(&resolved) {
            Ok(text) => self.check_pipeline(path, &text),
            // The command says why it cannot be read.
            Err(_) => Ok(resolved),
        }
    }

    fn allows(&self, resolved: &Path) -> bool {
        resolved.starts_with(&self.workspace)
            || self
                .granted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|g| resolved.starts_with(g))
    }

    fn outside(&self, path: &Path, field: Option<&str>) -> Failure {
        let what = match field {
            Some(field) => format!("`{field}` names {}", shown(path)),
            None => shown(path),
        };
        Failure::new(
            FailureCode::OutsideScope,
            format!(
                "{what}: outside the folders Syncline Studio may use (its workspace {} and the folders of what you chose with Browse…). Choose that file or its folder with Browse… to allow it.",
                shown(&self.workspace)
            ),
        )
    }
}

fn refused(path: &Path, why: &str) -> Failure {
    Failure::new(
        FailureCode::OutsideScope,
        format!("{}: {why}; give its full path", path.display()),
    )
}

/// `path` made absolute with its links resolved: its longest existing
/// ancestor canonicalised, then the rest appended. Refused: a relative
/// path (the studio has no folder of its own to resolve it against), and
/// `..` in the part that does not exist.
pub(crate) fn resolve(path: &Path) -> Result<PathBuf, Failure> {
    if !path.is_absolute() {
        return Err(refused(path, "a relative path"));
    }
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut full) => {
                for part in rest.iter().rev() {
                    full.push(part);
                }
                return Ok(full);
            }
            Err(_) => {
                let last = existing.components().next_back();
                match last {
                    Some(Component::Normal(name)) => {
                        rest.push(name.to_owned());
                        existing.pop();
                    }
                    Some(Component::CurDir) => {
                        existing.pop();
                    }
                    Some(Component::ParentDir) => {
                        return Err(refused(path, "`..` after a folder that does not exist"));
                    }
                    _ => return Err(refused(path, "no part of it exists")),
                }
            }
        }
    }
}

/// The local paths a pipeline's text names, as written (relative to its
/// folder unless absolute), each with the field that names it: a files
/// source's `path`, a DuckDB target's `path`, a search index's `path`.
/// Only the TOML syntax is read, so an otherwise invalid section still
/// has its path checked.
pub fn local_paths(path: &Path, text: &str) -> Vec<(String, PathBuf)> {
    const LOCAL: [(&str, &str); 3] = [
        ("sources", "files"),
        ("targets", "duckdb"),
        ("targets", "search"),
    ];
    let Ok(doc) = syncline_engine::config::document_json(path, text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for role in ["sources", "targets"] {
        let Some(sections) = doc.get(role).and_then(|s| s.as_object()) else {
            continue;
        };
        for (name, section) in sections {
            let kind = section.get("kind").and_then(|k| k.as_str());
            let local = LOCAL.iter().any(|(r, k)| *r == role && Some(*k) == kind);
            // An unknown kind may be a typo of a local one: check its path too.
            let known = LOCAL.iter().any(|(_, k)| Some(*k) == kind)
                || matches!(kind, Some("postgres" | "redis"));
            if let Some(p) = section.get("path").and_then(|p| p.as_str())
                && (local || !known)
            {
                out.push((format!("{role}.{name}.path"), PathBuf::from(p)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scope() -> (tempfile::TempDir, PathScope) {
        let dir = tempfile::tempdir().unwrap();
        let scope = PathScope::new(dir.path().join("ws"));
        (dir, scope)
    }

    #[test]
    fn the_workspace_is_allowed_and_nothing_else_until_granted() {
        let (dir, scope) = scope();
        assert!(scope.check(&scope.workspace().join("a/p.toml")).is_ok());
        let outside = dir.path().join("other/p.toml");
        let e = scope.check(&outside).unwrap_err();
        assert_eq!(e.code, FailureCode::OutsideScope);
        assert!(e.message.contains("other/p.toml"), "{}", e.message);
        assert!(e.message.contains("Browse…"), "{}", e.message);

        scope.grant_file_folder(&outside).unwrap();
        assert!(scope.check(&outside).is_ok());
        assert!(scope.check(&dir.path().join("other/deeper/x.csv")).is_ok());
        assert!(scope.check(&dir.path().join("third/x.csv")).is_err());
        assert!(
            scope.check(dir.path()).is_err(),
            "a grant does not reach up"
        );
    }

    #[cfg(unix)]
    #[test]
    fn dot_dot_and_links_cannot_leave_the_workspace() {
        let (dir, scope) = scope();
        let ws = scope.workspace().to_path_buf();
        std::fs::create_dir_all(dir.path().join("secret")).unwrap();
        // `..` through folders that exist resolves to where it leads.
        assert!(scope.check(&ws.join("../secret/k")).is_err());
        // `..` after a folder that does not exist is refused outright.
        let e = scope.check(&ws.join("new/../../secret/k")).unwrap_err();
        assert!(e.message.contains(".."), "{}", e.message);
        // A link inside the workspace to a folder outside it.
        std::os::unix::fs::symlink(dir.path().join("secret"), ws.join("link")).unwrap();
        assert!(scope.check(&ws.join("link/k")).is_err());
        assert!(scope.check(&ws.join("link")).is_err());
        // A relative path is refused: there is no folder to resolve it in.
        assert!(scope.check(Path::new("p.toml")).is_err());
    }

    #[test]
    fn a_pipelines_local_paths_must_be_in_scope_too() {
        let (dir, scope) = scope();
        let pipeline = scope.workspace().join("p.toml");
        let inside = "name = \"p\"\n[sources.s]\nkind = \"files\"\npath = \"data\"\n\
                      [targets.w]\nkind = \"duckdb\"\npath = \"w.duckdb\"\n";
        assert!(scope.check_pipeline(&pipeline, inside).is_ok());

        let elsewhere = dir.path().join("elsewhere");
        let text = format!(
            "name = \"p\"\n[sources.s]\nkind = \"files\"\npath = \"data\"\n\
             [targets.w]\nkind = \"duckdb\"\npath = \"{}\"\n",
            elsewhere.join("w.duckdb").display()
        );
        let e = scope.check_pipeline(&pipeline, &text).unwrap_err();
        assert_eq!(e.code, FailureCode::OutsideScope);
        assert!(e.message.contains("`targets.w.path`"), "{}", e.message);

        let up = "name = \"p\"\n[sources.s]\nkind = \"files\"\npath = \"../../etc\"\n";
        let e = scope.check_pipeline(&pipeline, up).unwrap_err();
        assert!(e.message.contains("`sources.s.path`"), "{}", e.message);

        // A search index, and a section whose kind is not one we know.
        let search = "[targets.i]\nkind = \"search\"\npath = \"/\"\n";
        assert!(scope.check_pipeline(&pipeline, search).is_err());
        let typo = "[sources.s]\nkind = \"filez\"\npath = \"/etc\"\n";
        assert!(scope.check_pipeline(&pipeline, typo).is_err());
        // A database target's connection has no local path.
        let pg = "[targets.p]\nkind = \"postgres\"\nurl = \"postgres://h/db\"\n";
        assert!(scope.check_pipeline(&pipeline, pg).is_ok());

        std::fs::create_dir_all(&elsewhere).unwrap();
        scope.grant(&elsewhere).unwrap();
        assert!(scope.check_pipeline(&pipeline, &text).is_ok());
    }

    #[test]
    fn a_saved_pipeline_is_checked_with_what_it_holds() {
        let (dir, scope) = scope();
        let pipeline = scope.workspace().join("p.toml");
        std::fs::write(
            &pipeline,
            "name = \"p\"\n[targets.w]\nkind = \"duckdb\"\npath = \"/w.duckdb\"\n",
        )
        .unwrap();
        assert!(scope.check_pipeline_file(&pipeline).is_err());
        std::fs::write(&pipeline, "name = \"p\"\n").unwrap();
        assert!(scope.check_pipeline_file(&pipeline).is_ok());
        assert!(
            scope
                .check_pipeline_file(&dir.path().join("p.toml"))
                .is_err()
        );
    }
}
