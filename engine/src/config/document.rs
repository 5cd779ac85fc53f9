//! The TOML document behind a pipeline: its JSON view for validation, where
//! each value and key sits in the text, and the editable form for write-back.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Number, Value as Json};
use toml_edit::{Document, DocumentMut, Item, Table, Value};

use super::errors::ConfigError;

/// Spans of one JSON pointer: its key (where it has one) and its value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spans {
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
}

/// A parsed pipeline file.
#[derive(Debug, Clone)]
pub struct SpannedDocument {
    /// The text as read.
    original: String,
    /// `editable` as toml_edit renders it right after parsing. toml_edit does
    /// not reproduce every file exactly (a missing final newline, dotted
    /// header keys written differently in two headers), so while the
    /// document renders the same as this it is unedited and the original
    /// text is written back instead.
    rendered: String,
    editable: DocumentMut,
    json: Json,
    spans: HashMap<String, Spans>,
}

impl SpannedDocument {
    /// Parses TOML text; a syntax error is reported with its position.
    pub(crate) fn parse(text: &str) -> Result<Self, ConfigError> {
        let doc = Document::parse(text.to_owned()).map_err(|e| {
            ConfigError::at_span(
                e.span(),
                format!("TOML syntax error: {}", first_line(e.message())),
            )
        })?;
        let mut spans = HashMap::new();
        let json = table_to_json(doc.as_table(), "", &mut spans);
        let editable: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            ConfigError::at_span(e.span(), format!("TOML syntax error: {}", e.message()))
        })?;
        Ok(SpannedDocument {
            original: text.to_owned(),
            rendered: editable.to_string(),
            editable,
            json,
            spans,
        })
    }

    /// The text as read.
    pub(crate) fn original(&self) -> &str {
        &self.original
    }

    /// The document as JSON (TOML datetimes become strings).
    pub fn json(&self) -> &Json {
        &self.json
    }

    /// The editable document (comments and layout kept).
    pub fn editable(&mut self) -> &mut DocumentMut {
        &mut self.editable
    }

    /// The document as TOML text: exactly the text read, unless it was edited.
    pub fn to_toml(&self) -> String {
        let now = self.editable.to_string();
        if now == self.rendered {
            self.original.clone()
        } else {
            now
        }
    }

    /// The best span for a JSON pointer: its key if `prefer_key`, else its
    /// value; falling back to the nearest ancestor that has one.
    pub(crate) fn span(&self, pointer: &str, prefer_key: bool) -> Option<Range<usize>> {
        let mut p = pointer;
        loop {
            if let Some(s) = self.spans.get(p) {
                let found = if prefer_key {
                    s.key.clone().or_else(|| s.value.clone())
                } else {
                    s.value.clone().or_else(|| s.key.clone())
                };
                if found.is_some() {
                    return found;
                }
            }
            if p.is_empty() {
                return None;
            }
            p = match p.rfind('/') {
                Some(i) => &p[..i],
                None => "",
            };
        }
    }
}

fn first_line(s: &str) -> &str {
    s.trim().lines().next().unwrap_or("")
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn table_to_json(table: &Table, pointer: &str, spans: &mut HashMap<String, Spans>) -> Json {
    let mut map = Map::new();
    let mut first_key = None;
    for (key, item) in table.iter() {
        let child = format!("{pointer}/{}", escape(key));
        let key_span = table.key(key).and_then(|k| k.span());
        first_key = first_key.or_else(|| key_span.clone());
        spans.entry(child.clone()).or_default().key = key_span;
        if let Some(v) = item_to_json(item, &child, spans) {
            map.insert(key.to_owned(), v);
        }
    }
    // An implicit table (`[a.b]` creates `a`) has no span of its own: point
    // at its first key instead.
    let entry = spans.entry(pointer.to_owned()).or_default();
    entry.value = table.span().or(first_key);
    Json::Object(map)
}

fn item_to_json(item: &Item, pointer: &str, spans: &mut HashMap<String, Spans>) -> Option<Json> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value_to_json(v, pointer, spans)),
        Item::Table(t) => Some(table_to_json(t, pointer, spans)),
        Item::ArrayOfTables(a) => {
            spans.entry(pointer.to_owned()).or_default().value = a.span();
            Some(Json::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, t)| table_to_json(t, &format!("{pointer}/{i}"), spans))
                    .collect(),
            ))
        }
    }
}

fn value_to_json(value: &Value, pointer: &str, spans: &mut HashMap<String, Spans>) -> Json {
    spans.entry(pointer.to_owned()).or_default().value = value.span();
    match value {
        Value::String(s) => Json::String(s.value().clone()),
        Value::Integer(i) => Json::Number(Number::from(*i.value())),
        Value::Float(f) => Number::from_f64(*f.value()).map_or(Json::Null, Json::Number),
        Value::Boolean(b) => Json::Bool(*b.value()),
        Value::Datetime(d) => Json::String(d.value().to_string()),
        Value::Array(a) => Json::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| value_to_json(v, &format!("{pointer}/{i}"), spans))
                .collect(),
        ),
        Value::InlineTable(t) => {
            let mut map = Map::new();
            for (key, v) in t.iter() {
                let child = format!("{pointer}/{}", escape(key));
                let key_span = t.key(key).and_then(|k| k.span());
                spans.entry(child.clone()).or_default().key = key_span;
                map.insert(key.to_owned(), value_to_json(v, &child, spans));
            }
            Json::Object(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unedited_documents_write_back_exactly() {
        // toml_edit alone would add a final newline and rewrite the second
        // header's dotted key as the first one spells it.
        let text = "[ a . \"b\" ]\nx = 1\n[[a.b.c]]\ny = 2 # no newline";
        let mut doc = SpannedDocument::parse(text).expect("valid TOML");
        assert_eq!(doc.to_toml(), text);

        doc.editable()["a"]["b"]["x"] = toml_edit::value(5);
        let edited = doc.to_toml();
        assert!(edited.contains("x = 5"), "{edited}");
    }
}
