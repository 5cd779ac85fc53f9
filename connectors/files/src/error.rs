//! Errors of the files source.

use std::path::{Path, PathBuf};

use syncline_engine::{Error, ErrorKind};

/// What went wrong reading a folder of files.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The folder or a file cannot be read.
    #[error("{}: {detail}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
    /// The table's settings do not fit its files.
    #[error("table `{table}`: {detail}")]
    Table {
        /// Table name.
        table: String,
        /// What is wrong.
        detail: String,
    },
    /// The source's own state folder cannot be used.
    #[error("state folder {}: {detail}", path.display())]
    State {
        /// The folder.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
    /// Watching the folder failed.
    #[error("watching {}: {detail}", path.display())]
    Watch {
        /// The folder.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
}

impl FilesError {
    pub(crate) fn read(path: &Path, detail: String) -> Self {
        FilesError::Read {
            path: path.to_path_buf(),
            detail,
        }
    }
}

impl From<FilesError> for Error {
    fn from(e: FilesError) -> Self {
        let kind = match &e {
            FilesError::Read { .. } | FilesError::Watch { .. } => ErrorKind::Io,
            FilesError::Table { .. } => ErrorKind::Config,
            FilesError::State { .. } => ErrorKind::State,
        };
        Error::new(kind, e.to_string())
    }
}
