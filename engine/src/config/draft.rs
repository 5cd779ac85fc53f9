//! Pipeline drafts: a pipeline held as JSON (the structure of the TOML
//! document, as the desktop studio's forms edit it), rendered as canonical
//! TOML. Secrets are refused as values: only references are ever written.

use serde_json::{Map, Value as Json};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::errors::ConfigError;
use super::secret::{Secret, looks_secret};
use super::validate::field_path;

/// The top-level keys written first, in this order; sections follow.
const HEAD: &[&str] = &["name", "description", "max_dead_letters"];
/// The section groups, in this order.
const SECTIONS: &[&str] = &["sources", "transforms", "targets"];

/// Renders a draft as TOML: top-level settings first, then one table per
/// source, transform and target (`kind` first in each), arrays of objects
/// inside a section as arrays of tables, deeper objects inline. `null`
/// values are left out. A string in a field named like a secret that is
/// not a `${env:..}`/`${keyring:..}` reference is refused, naming the
/// field; so is a draft that is not a JSON object.
///
/// The text is not validated here: parse it like a file for that.
pub fn render_draft(draft: &Json) -> Result<String, ConfigError> {
    let Some(top) = draft.as_object() else {
        return Err(ConfigError::root(
            "a pipeline draft is a JSON object (name, sources, transforms, targets)",
        ));
    };
    refuse_literal_secrets(draft, "")?;

    let mut doc = DocumentMut::new();
    let table = doc.as_table_mut();
    let head = HEAD
        .iter()
        .filter_map(|k| top.get_key_value(*k))
        .chain(top.iter().filter(|(k, _)| !HEAD.contains(&k.as_str())));
    // Plain values first (TOML puts every key of the root before its first
    // table), then the sections.
    for (key, value) in head {
        if is_section_group(key, value) {
            continue;
        }
        if let Some(v) = to_value(value) {
            table.insert(key, Item::Value(v));
        }
    }
    let groups = SECTIONS
        .iter()
        .filter_map(|k| top.get_key_value(*k))
        .chain(top.iter().filter(|(k, _)| !SECTIONS.contains(&k.as_str())));
    for (key, value) in groups {
        if !is_section_group(key, value) {
            continue;
        }
        let Some(sections) = value.as_object() else {
            continue;
        };
        let mut group = Table::new();
        group.set_implicit(true);
        for (name, body) in sections {
            let Some(body) = body.as_object() else {
                if let Some(v) = to_value(body) {
                    group.insert(name, Item::Value(v));
                }
                continue;
            };
            group.insert(name, Item::Table(section_table(body)));
        }
        table.insert(key, Item::Table(group));
    }
    Ok(doc.to_string())
}

/// `sources`, `transforms`, `targets` (and any other object of objects).
fn is_section_group(key: &str, value: &Json) -> bool {
    SECTIONS.contains(&key)
        || value
            .as_object()
            .is_some_and(|m| !m.is_empty() && m.values().all(Json::is_object))
}

fn section_table(body: &Map<String, Json>) -> Table {
    let mut table = Table::new();
    let ordered = body
        .get_key_value("kind")
        .into_iter()
        .chain(body.iter().filter(|(k, _)| k.as_str() != "kind"));
    let mut later: Vec<(&String, Item)> = Vec::new();
    for (key, value) in ordered {
        match value {
            Json::Array(items) if !items.is_empty() && items.iter().all(Json::is_object) => {
                let mut array = ArrayOfTables::new();
                for item in items.iter().filter_map(Json::as_object) {
                    let mut entry = Table::new();
                    for (k, v) in item {
                        if let Some(v) = to_value(v) {
                            entry.insert(k, Item::Value(v));
                        }
                    }
                    array.push(entry);
                }
                later.push((key, Item::ArrayOfTables(array)));
            }
            Json::Object(map) if !map.is_empty() => {
                later.push((key, Item::Table(section_table(map))));
            }
            other => {
                if let Some(v) = to_value(other) {
                    table.insert(key, Item::Value(v));
                }
            }
        }
    }
    for (key, item) in later {
        table.insert(key, item);
    }
    table
}

fn to_value(value: &Json) -> Option<Value> {
    Some(match value {
        Json::Null => return None,
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::from(n.as_f64()?),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => {
            let mut array = Array::new();
            for item in items {
                if let Some(v) = to_value(item) {
                    array.push(v);
                }
            }
            Value::Array(array)
        }
        Json::Object(map) => {
            let mut inline = InlineTable::new();
            for (k, v) in map {
                if let Some(v) = to_value(v) {
                    inline.insert(k, v);
                }
            }
            inline.fmt();
            Value::InlineTable(inline)
        }
    })
}

fn refuse_literal_secrets(value: &Json, pointer: &str) -> Result<(), ConfigError> {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                let child = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                match v {
                    Json::String(s)
                        if looks_secret(k) && !s.is_empty() && Secret::parse(s).is_none() =>
                    {
                        let field = field_path(&child);
                        return Err(ConfigError {
                            field: field.clone(),
                            span: None,
                            message: format!(
                                "`{field}` holds a secret as a value; secrets are never written into pipeline files"
                            ),
                            help: Some(
                                "store it in the OS keyring (${keyring:...}) or reference an environment variable (${env:NAME})"
                                    .to_owned(),
                            ),
                            secret: true,
                        });
                    }
                    _ => refuse_literal_secrets(v, &child)?,
                }
            }
            Ok(())
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| refuse_literal_secrets(v, &format!("{pointer}/{i}"))),
        _ => Ok(()),
    }
}
