//! Complete validation of a pipeline document: literal secrets, the JSON
//! Schema of the file and of each connector section, then the references
//! and rules between sections. Every error found is returned.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::document::SpannedDocument;
use super::errors::ConfigError;
use super::schema_errors::schema_errors;
use super::secret::{Secret, looks_secret};
use super::{ConnectorSet, PipelineSpec, SourceSpec, SyncMode, TableDecl, TargetSpec, WriteMode};

/// Any connector section, for the file-level schema: `kind` plus anything.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct AnySection {
    /// Connector kind.
    kind: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, Json>,
}

pub(super) fn validate<S, T>(doc: &SpannedDocument) -> Result<PipelineSpec<S, T>, Vec<ConfigError>>
where
    S: ConnectorSet + SourceSpec,
    T: ConnectorSet + TargetSpec,
{
    validate_as::<S, T>(doc, false)
}

/// Like [`validate`]; a `draft` (a pipeline being written in the desktop
/// studio) may have no targets yet.
pub(super) fn validate_as<S, T>(
    doc: &SpannedDocument,
    draft: bool,
) -> Result<PipelineSpec<S, T>, Vec<ConfigError>>
where
    S: ConnectorSet + SourceSpec,
    T: ConnectorSet + TargetSpec,
{
    let json: std::borrow::Cow<'_, Json> = match doc.json().as_object() {
        Some(map) if draft && !map.contains_key("targets") => {
            let mut map = map.clone();
            map.insert("targets".to_owned(), Json::Object(Default::default()));
            std::borrow::Cow::Owned(Json::Object(map))
        }
        _ => std::borrow::Cow::Borrowed(doc.json()),
    };
    let json = json.as_ref();
    let mut errors = Vec::new();
    scan_literal_secrets(json, "", doc, &mut errors);

    let file_schema = schemars::schema_for!(PipelineSpec<AnySection, AnySection>).to_value();
    schema_errors(&file_schema, json, "", doc, &mut errors);
    // `#[schemars(length(min = 1))]` on a map emits no `minProperties`, so
    // the schema lets empty `sources` and `targets` through.
    for (field, role) in [("sources", "source"), ("targets", "target")] {
        if draft && field == "targets" {
            continue;
        }
        if json
            .get(field)
            .and_then(Json::as_object)
            .is_some_and(|sections| sections.is_empty())
        {
            errors.push(
                error_at(
                    doc,
                    &format!("/{field}"),
                    false,
                    format!("a pipeline needs at least one {role}"),
                )
                .with_help(format!("add a [{field}.<name>] section with its `kind`")),
            );
        }
    }
    for (field, role, kinds) in [
        ("sources", "source", S::kinds()),
        ("targets", "target", T::kinds()),
    ] {
        let Some(sections) = json.get(field).and_then(Json::as_object) else {
            continue;
        };
        for (name, section) in sections {
            let pointer = format!("/{field}/{}", escape(name));
            let Some(kind) = section.get("kind").and_then(Json::as_str) else {
                continue; // the file schema reported the missing `kind`
            };
            match kinds.iter().find(|k| k.kind == kind) {
                Some(k) => schema_errors(&k.schema, section, &pointer, doc, &mut errors),
                None => {
                    let known: Vec<&str> = kinds.iter().map(|k| k.kind).collect();
                    let mut e = error_at(
                        doc,
                        &format!("{pointer}/kind"),
                        false,
                        format!("unknown {role} kind `{kind}`"),
                    );
                    e.help = Some(match suggest(kind, known.iter().copied()) {
                        Some(s) => format!(
                            "did you mean `{s}`? known {role} kinds: {}",
                            known.join(", ")
                        ),
                        None => format!("known {role} kinds: {}", known.join(", ")),
                    });
                    errors.push(e);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let spec: PipelineSpec<S, T> = match serde_path_to_error::deserialize(json.clone()) {
        Ok(spec) => spec,
        Err(e) => {
            let pointer = path_to_pointer(&e.path().to_string());
            return Err(vec![error_at(doc, &pointer, false, e.inner().to_string())]);
        }
    };
    check_references(&spec, doc, &mut errors);
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

/// Validates one connector section (`/sources/<name>` or `/targets/<name>`)
/// on its own: literal secrets, its kind's schema, then its type.
pub(super) fn section<C: ConnectorSet>(
    doc: &SpannedDocument,
    field: &str,
    name: &str,
) -> Result<C, Vec<ConfigError>> {
    let pointer = format!("/{field}/{}", escape(name));
    let role = field.trim_end_matches('s');
    let Some(section) = doc.json().pointer(&pointer) else {
        return Err(vec![ConfigError::root(format!(
            "the pipeline has no {role} named `{name}`"
        ))]);
    };
    let mut errors = Vec::new();
    scan_literal_secrets(section, &pointer, doc, &mut errors);
    let kinds = C::kinds();
    match section.get("kind").and_then(Json::as_str) {
        Some(kind) => match kinds.iter().find(|k| k.kind == kind) {
            Some(k) => schema_errors(&k.schema, section, &pointer, doc, &mut errors),
            None => {
                let known: Vec<&str> = kinds.iter().map(|k| k.kind).collect();
                errors.push(
                    error_at(
                        doc,
                        &format!("{pointer}/kind"),
                        false,
                        format!("unknown {role} kind `{kind}`"),
                    )
                    .with_help(format!("known {role} kinds: {}", known.join(", "))),
                );
            }
        },
        None => errors.push(error_at(
            doc,
            &pointer,
            true,
            "missing field `kind`".to_owned(),
        )),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    serde_path_to_error::deserialize(section.clone()).map_err(|e| {
        let inner = path_to_pointer(&e.path().to_string());
        vec![error_at(
            doc,
            &format!("{pointer}{inner}"),
            false,
            e.inner().to_string(),
        )]
    })
}

/// Any string whose key names a secret must be a reference.
pub(super) fn scan_literal_secrets(
    value: &Json,
    pointer: &str,
    doc: &SpannedDocument,
    errors: &mut Vec<ConfigError>,
) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                let child = format!("{pointer}/{}", escape(k));
                match v {
                    Json::String(s) if looks_secret(k) && Secret::parse(s).is_none() => {
                        errors.push(literal_secret(doc, &child));
                    }
                    _ => scan_literal_secrets(v, &child, doc, errors),
                }
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                scan_literal_secrets(v, &format!("{pointer}/{i}"), doc, errors);
            }
        }
        _ => {}
    }
}

pub(super) fn literal_secret(doc: &SpannedDocument, pointer: &str) -> ConfigError {
    let field = field_path(pointer);
    let leaf = field.rsplit('.').next().unwrap_or("secret").to_owned();
    let var = format!(
        "SYNCLINE_{}",
        field
            .replace(['.', '[', ']', '-'], "_")
            .to_ascii_uppercase()
    )
    .replace("__", "_");
    let mut e = error_at(
        doc,
        pointer,
        false,
        "a secret is written into the file as a value, which is refused",
    );
    e.secret = true;
    e.with_help(format!(
            "reference it instead: {leaf} = \"${{env:{}}}\" and set that environment variable (or use ${{keyring:service/account}})",
            var.trim_end_matches('_')
        ))
}

fn check_references<S, T>(
    spec: &PipelineSpec<S, T>,
    doc: &SpannedDocument,
    errors: &mut Vec<ConfigError>,
) where
    S: SourceSpec,
    T: TargetSpec,
{
    // Every table by `source.table`.
    let mut tables: BTreeMap<String, TableDecl> = BTreeMap::new();
    for (source_name, source) in &spec.sources {
        let base = format!("/sources/{}", escape(source_name));
        check_name(doc, &base, source_name, "source", errors);
        let mut seen = BTreeSet::new();
        for table in source.tables() {
            let at = format!("{base}{}", table.pointer);
            if !seen.insert(table.name.clone()) {
                errors.push(error_at(
                    doc,
                    &format!("{at}/name"),
                    false,
                    format!(
                        "table `{}` is declared twice in source `{source_name}`",
                        table.name
                    ),
                ));
            }
            if !source.supported_modes().contains(&table.mode) {
                let modes: Vec<&str> = source
                    .supported_modes()
                    .iter()
                    .map(|m| m.as_str())
                    .collect();
                errors.push(
                    error_at(
                        doc,
                        &format!("{at}/mode"),
                        false,
                        format!(
                            "a `{}` source does not support mode `{}`",
                            source.kind(),
                            table.mode.as_str()
                        ),
                    )
                    .with_help(format!("supported modes: {}", modes.join(", "))),
                );
            }
            if table.mode == SyncMode::Incremental && table.cursor.is_none() {
                errors.push(
                    error_at(
                        doc,
                        &at,
                        true,
                        "incremental mode needs a cursor column".to_owned(),
                    )
                    .with_help(
                        "add cursor = \"updated_at\" (a column that grows with every change)",
                    ),
                );
            }
            // A duplicate is reported above; the first declaration stands.
            tables
                .entry(format!("{source_name}.{}", table.name))
                .or_insert(table);
        }
    }

    for (name, transform) in &spec.transforms {
        let base = format!("/transforms/{}", escape(name));
        check_name(doc, &base, name, "transform", errors);
        if spec.sources.contains_key(name) {
            errors.push(error_at(
                doc,
                &base,
                true,
                format!("`{name}` names both a source and a transform"),
            ));
        }
        match tables.get(&transform.input) {
            None => errors.push(dangling(
                doc,
                &format!("{base}/input"),
                &transform.input,
                tables.keys().map(String::as_str),
                "a source table (`source.table`)",
            )),
            Some(decl) if decl.key.is_empty() && !decl.key_from_source => errors.push(
                error_at(
                    doc,
                    &format!("{base}/input"),
                    false,
                    format!(
                        "transform `{name}` reads `{}`, which has no key: a transform passes deletes and updates on by key",
                        transform.input
                    ),
                )
                .with_help("declare key = [\"id\"] on the table"),
            ),
            Some(_) => {}
        }
        for (i, lookup) in transform.lookups.iter().enumerate() {
            if !tables.contains_key(lookup) {
                errors.push(dangling(
                    doc,
                    &format!("{base}/lookups/{i}"),
                    lookup,
                    tables.keys().map(String::as_str),
                    "a source table (`source.table`)",
                ));
            } else if *lookup == transform.input {
                errors.push(error_at(
                    doc,
                    &format!("{base}/lookups/{i}"),
                    false,
                    format!("`{lookup}` is the transform's own input; read it as `source`"),
                ));
            }
        }
    }

    for (name, target) in &spec.targets {
        let base = format!("/targets/{}", escape(name));
        check_name(doc, &base, name, "target", errors);
        if target.inputs().is_empty() {
            errors.push(error_at(
                doc,
                &format!("{base}/inputs"),
                true,
                "a target needs at least one input",
            ));
        }
        let candidates: Vec<&str> = spec
            .sources
            .keys()
            .chain(spec.transforms.keys())
            .chain(tables.keys())
            .map(String::as_str)
            .collect();
        // Target table name → what fills it (`source.table` or a transform).
        let mut filled_by: BTreeMap<String, String> = BTreeMap::new();
        for (i, input) in target.inputs().iter().enumerate() {
            let pointer = format!("{base}/inputs/{i}");
            // What the input resolves to: (table name for messages, its declaration).
            let resolved: Vec<(String, &TableDecl)> = if let Some(t) = tables.get(input) {
                vec![(input.clone(), t)]
            } else if spec.sources.contains_key(input) {
                tables
                    .iter()
                    .filter(|(k, _)| k.split_once('.').is_some_and(|(s, _)| s == input))
                    .map(|(k, t)| (k.clone(), t))
                    .collect()
            } else if let Some(tr) = spec.transforms.get(input) {
                tables
                    .get(&tr.input)
                    .map(|t| (input.clone(), t))
                    .into_iter()
                    .collect()
            } else {
                errors.push(dangling(
                    doc,
                    &pointer,
                    input,
                    candidates.iter().copied(),
                    "a source, a `source.table` or a transform",
                ));
                continue;
            };
            let transform = spec.transforms.contains_key(input);
            for (what, decl) in &resolved {
                // A transform's output table is named after the transform.
                let table = if transform { input } else { &decl.name };
                match filled_by.get(table) {
                    Some(other) if other != what => errors.push(
                        error_at(
                            doc,
                            &pointer,
                            false,
                            format!(
                                "target `{name}` would write `{other}` and `{what}` into one table `{table}`: the rows of one would overwrite the other's, and a full reload of one would delete the other's"
                            ),
                        )
                        .with_help(
                            "send them to different targets, or list only one of them in `inputs` (a `source.table` input takes one table of a source)",
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        filled_by.insert(table.clone(), what.clone());
                    }
                }
            }
            if target.write_mode() == WriteMode::Upsert {
                for (table_name, decl) in resolved
                    .iter()
                    .filter(|(_, d)| d.key.is_empty() && !d.key_from_source)
                {
                    let _ = decl;
                    errors.push(
                        error_at(
                            doc,
                            &pointer,
                            false,
                            format!(
                                "target `{name}` writes in upsert mode, which needs a key, but table `{table_name}` has none"
                            ),
                        )
                        .with_help("add key = [\"id\"] to the table, or set mode = \"append\" or \"history\" on the target"),
                    );
                }
            }
        }
    }
}

fn check_name(
    doc: &SpannedDocument,
    pointer: &str,
    name: &str,
    role: &str,
    errors: &mut Vec<ConfigError>,
) {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        errors.push(
            error_at(
                doc,
                pointer,
                true,
                format!("`{name}` is not a valid {role} name"),
            )
            .with_help("names start with a letter or `_` and have only letters, digits and `_`"),
        );
    }
}

fn dangling<'a>(
    doc: &SpannedDocument,
    pointer: &str,
    reference: &str,
    candidates: impl Iterator<Item = &'a str> + Clone,
    what: &str,
) -> ConfigError {
    let mut e = error_at(
        doc,
        pointer,
        false,
        format!("`{reference}` does not name {what} of this pipeline"),
    );
    let all: Vec<&str> = candidates.clone().collect();
    e.help = Some(match suggest(reference, candidates) {
        Some(s) => format!("did you mean `{s}`?"),
        None if all.is_empty() => "declare it first".to_owned(),
        None => format!("known: {}", all.join(", ")),
    });
    e
}

pub(super) fn error_at(
    doc: &SpannedDocument,
    pointer: &str,
    prefer_key: bool,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError {
        field: field_path(pointer),
        span: doc.span(pointer, prefer_key),
        message: message.into(),
        ..ConfigError::default()
    }
}

/// `/sources/shop/tables/0/key` → `sources.shop.tables[0].key`.
pub(super) fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.chars().all(|c| c.is_ascii_digit()) && !segment.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

/// serde_path_to_error's `a.b[0].c` → `/a/b/0/c`.
pub(super) fn path_to_pointer(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push('/');
            out.push_str(&escape(name));
        }
        for index in rest.split('[') {
            let index = index.trim_end_matches(']');
            if !index.is_empty() {
                out.push('/');
                out.push_str(index);
            }
        }
    }
    out
}

pub(super) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The closest candidate, if it is close enough to be a likely typo.
pub(super) fn suggest<'a>(got: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(got, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_and_field_paths() {
        assert_eq!(
            field_path("/sources/shop/tables/0/key"),
            "sources.shop.tables[0].key"
        );
        assert_eq!(field_path(""), "");
        assert_eq!(
            path_to_pointer("sources.shop.tables[0].key"),
            "/sources/shop/tables/0/key"
        );
        assert_eq!(path_to_pointer("."), "");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let known = ["pattern", "format", "key"];
        assert_eq!(suggest("pattrn", known.iter().copied()), Some("pattern"));
        assert_eq!(suggest("zzzzzzzz", known.iter().copied()), None);
    }
}
