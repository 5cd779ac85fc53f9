//! Which files the studio's commands may touch: the studio's workspace
//! folder, and the folders of what the user chose in a native dialog the
//! shell itself showed (the web content can ask for one, never answer it).
//! Every path a command takes, and every local path a pipeline it is given
//! names (a files source's folder, a DuckDB file, a search index's folder),
//! must lie inside one of them; anything else is refused with the code
//! `outside_scope` and a message that says how to allow it. So a page that
//! got script into the window still cannot make the studio read, write or
//! delete a file the user never pointed it at.
//!
//! Paths are compared after symbolic links are resolved (as far as the path
//! exists), so a path given through a link inside the workspace that points
//! elsewhere is refused, and so is a link that points nowhere; a part of a
//! path that does not exist yet may not hold `..`. (Files a pipeline reads
//! inside a folder that passed, such as a source folder's files, are not
//! checked one by one.) A picked file grants its folder, unless that is the
//! root or the home folder (or above it): then only the file itself; such
//! folders cannot be granted by picking them either. Grants last as long as
//! the app runs.

use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use super::failure::{Failure, FailureCode};

/// The folders the studio's commands may use. Shared by every command (one
/// per app).
#[derive(Debug)]
pub struct PathScope {
    workspace: PathBuf,
    /// Granted since the app started: folders (with everything under
    /// them) and single files (picked where their folder is too wide).
    granted: Mutex<Vec<PathBuf>>,
}

/// The home folder, resolved.
fn home() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    let home = PathBuf::from(home);
    Some(home.canonicalize().unwrap_or(home))
}

/// Whether granting `folder` would hand over too much: the root, the home
/// folder or a folder above it.
fn too_wide(folder: &Path) -> bool {
    folder.parent().is_none() || home().is_some_and(|h| h.starts_with(folder))
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
        if too_wide(&folder) {
            return Err(refused(
                &folder,
                "the root or home folder gives the studio every file: choose the folder that holds the pipeline's files",
            ));
        }
        self.add(folder);
        Ok(())
    }

    /// Adds a resolved folder or file to the grants (once: what a grant
    /// already covers is not added, and what the new one covers goes).
    fn add(&self, root: PathBuf) {
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        if !granted.iter().any(|g| root.starts_with(g)) {
            granted.retain(|g| !g.starts_with(&root));
            tracing::info!(path = %root.display(), "allowed");
            granted.push(root);
        }
    }

    /// Lets the commands use the folder of `file`, which the user chose in
    /// a native dialog (a pipeline's paths are relative to its folder).
    pub fn grant_file_folder(&self, file: &Path) -> Result<(), Failure> {
        let file = resolve(file)?;
        match file.parent() {
            Some(folder) if !too_wide(folder) => self.grant(folder),
            _ => {
                self.add(file);
                Ok(())
            }
        }
    }

    /// Checks a pipeline file the studio is asked to write: in scope, and
    /// a `.toml` file outside hidden folders (so a grant never lets the
    /// window write a shell's start-up file or an autostart entry).
    pub fn check_pipeline_target(&self, path: &Path, text: &str) -> Result<PathBuf, Failure> {
        let resolved = self.check_pipeline(path, text)?;
        let toml = resolved.extension().is_some_and(|e| e == "toml");
        // Hidden below the folder that lets it in (the folder itself may
        // be anywhere the user chose).
        let below = self
            .root_of(&resolved)
            .and_then(|root| resolved.strip_prefix(root).ok().map(Path::to_path_buf))
            .unwrap_or_default();
        let hidden = below
            .components()
            .any(|c| matches!(c, Component::Normal(n) if n.to_string_lossy().starts_with('.')));
        if !toml || hidden {
            return Err(Failure::new(
                FailureCode::OutsideScope,
                format!(
                    "{}: the studio writes pipelines only as .toml files outside hidden folders",
                    shown(path)
                ),
            ));
        }
        Ok(resolved)
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
        // As the engine resolves them: against the folder the file is in
        // as given (a link to the file does not move its folder).
        let base = path.parent().unwrap_or(Path::new("/"));
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

    /// The folder (or file) of the scope that lets `resolved` in, the
    /// deepest where several do.
    fn root_of(&self, resolved: &Path) -> Option<PathBuf> {
        let granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        std::iter::once(&self.workspace)
            .chain(granted.iter())
            .filter(|root| resolved.starts_with(root))
            .max_by_key(|root| root.components().count())
            .cloned()
    }

    fn allows(&self, resolved: &Path) -> bool {
        self.root_of(resolved).is_some()
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
            Err(e) => {
                // Something is there (a link to nowhere, or what cannot be
                // looked into): where it leads is unknown, so it is refused.
                if existing.symlink_metadata().is_ok() {
                    return Err(refused(
                        path,
                        &format!("cannot resolve {}: {e}", existing.display()),
                    ));
                }
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
                || matches!(kind, Some("postgres" | "mysql" | "redis"));
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
        // A link to nowhere: a write through it would land outside.
        std::os::unix::fs::symlink(dir.path().join("secret/new.duckdb"), ws.join("dangling"))
            .unwrap();
        let e = scope.check(&ws.join("dangling")).unwrap_err();
        assert!(e.message.contains("cannot resolve"), "{}", e.message);
    }

    #[test]
    fn the_root_and_home_folders_are_never_granted_whole() {
        let (dir, scope) = scope();
        assert!(scope.grant(Path::new("/")).is_err());
        // A file picked right in the root folder grants that file alone.
        scope
            .grant_file_folder(Path::new("/pipeline.toml"))
            .unwrap();
        assert!(scope.check(Path::new("/pipeline.toml")).is_ok());
        assert!(scope.check(Path::new("/etc/passwd")).is_err());
        if let Some(home) = home() {
            assert!(scope.grant(&home).is_err());
            scope.grant_file_folder(&home.join("p.toml")).unwrap();
            assert!(scope.check(&home.join("p.toml")).is_ok());
            assert!(scope.check(&home.join(".bashrc")).is_err());
        }
        // A pipeline is written only as a .toml file outside hidden folders.
        let ws = scope.workspace().to_path_buf();
        assert!(scope.check_pipeline_target(&ws.join("p.toml"), "").is_ok());
        assert!(scope.check_pipeline_target(&ws.join("p.sh"), "").is_err());
        assert!(
            scope
                .check_pipeline_target(&ws.join(".config/p.toml"), "")
                .is_err()
        );
        drop(dir);
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
