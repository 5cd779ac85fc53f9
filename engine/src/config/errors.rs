//! Configuration errors: each one names the file, line, column and field
//! path, and all of a file's errors are reported together.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config};

/// One problem in a pipeline file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigError {
    /// Field path, e.g. `sources.shop.tables[0].key`; empty for the file itself.
    pub field: String,
    /// Byte range in the file, where one is known.
    pub span: Option<Range<usize>>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, where there is something to say.
    pub help: Option<String>,
    /// The span is a secret's value written into the file: rendered
    /// masked, wherever a rendering shows its line.
    pub secret: bool,
}

impl ConfigError {
    /// An error about the file as a whole.
    pub fn root(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            ..ConfigError::default()
        }
    }

    pub(crate) fn at_span(span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        ConfigError {
            span,
            message: message.into(),
            ..ConfigError::default()
        }
    }

    /// Adds a hint on how to fix it.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every problem found in one pipeline file.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    /// The file.
    pub path: PathBuf,
    text: String,
    /// The problems, in file order.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub(crate) fn new(path: &Path, text: String, mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by_key(|e| e.span.as_ref().map_or(0, |s| s.start));
        errors.dedup();
        ConfigErrors {
            path: path.to_path_buf(),
            text,
            errors,
        }
    }

    pub(crate) fn single(path: &Path, text: String, error: ConfigError) -> Self {
        Self::new(path, text, vec![error])
    }

    /// 1-based line and column of an error, where it has a span.
    pub fn line_column(&self, error: &ConfigError) -> Option<(usize, usize)> {
        let start = error.span.as_ref()?.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(start, |i| start - i - 1) + 1;
        Some((line, column))
    }

    /// The file's text with every secret value an error points at masked
    /// (`"*******"`, byte for byte, so every span still holds).
    fn shown_text(&self) -> String {
        let mut bytes = self.text.clone().into_bytes();
        for span in self
            .errors
            .iter()
            .filter(|e| e.secret)
            .filter_map(|e| e.span.clone())
        {
            let end = span.end.min(bytes.len());
            for b in bytes.get_mut(span.start..end).into_iter().flatten() {
                if !matches!(*b, b'"' | b'\'') {
                    *b = b'*';
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Renders all errors as plain text, like a compiler would. Secret
    /// values written into the file are never shown.
    pub fn render(&self) -> String {
        let shown = self.shown_text();
        let file = SimpleFile::new(self.path.display().to_string(), shown.as_str());
        let config = Config::default();
        let mut out = String::new();
        for error in &self.errors {
            let mut diagnostic = Diagnostic::error().with_message(&error.message);
            if let Some(span) = &error.span {
                let label = if error.field.is_empty() {
                    Label::primary((), span.clone())
                } else {
                    Label::primary((), span.clone()).with_message(format!("in `{}`", error.field))
                };
                diagnostic = diagnostic.with_labels(vec![label]);
            } else {
                out.push_str(&format!("{}: ", self.path.display()));
            }
            let mut notes = Vec::new();
            if error.span.is_none() && !error.field.is_empty() {
                notes.push(format!("field: {}", error.field));
            }
            if let Some(help) = &error.help {
                notes.push(format!("help: {help}"));
            }
            diagnostic = diagnostic.with_notes(notes);
            match term::emit_into_string(&config, &file, &diagnostic) {
                Ok(text) => out.push_str(&text),
                Err(_) => out.push_str(&format!("error: {}\n", error.message)),
            }
        }
        let n = self.errors.len();
        out.push_str(&format!(
            "{n} error{} in {}\n",
            if n == 1 { "" } else { "s" },
            self.path.display()
        ));
        out
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for ConfigErrors {}
