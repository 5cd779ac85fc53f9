//! JSON Schema validation errors as the user sees them: the file, line and
//! field, what was expected and what was found, with a suggestion for a
//! near miss.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value as Json;

use super::document::SpannedDocument;
use super::errors::ConfigError;
use super::secret::SECRET_PATTERN;
use super::validate::{error_at, escape, literal_secret, suggest};

pub(super) fn schema_errors(
    schema: &Json,
    instance: &Json,
    base: &str,
    doc: &SpannedDocument,
    errors: &mut Vec<ConfigError>,
) {
    let validator = match jsonschema::validator_for(schema) {
        Ok(v) => v,
        Err(e) => {
            errors.push(ConfigError::root(format!("internal: invalid schema: {e}")));
            return;
        }
    };
    for error in validator.iter_errors(instance) {
        let pointer = format!("{base}{}", error.instance_path().as_str());
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = allowed_properties(schema, &error.schema_path().to_string());
                for key in unexpected {
                    let mut e = error_at(
                        doc,
                        &format!("{pointer}/{}", escape(key)),
                        true,
                        format!("unknown field `{key}`"),
                    );
                    e.help = match suggest(key, known.iter().map(String::as_str)) {
                        Some(s) => Some(format!("did you mean `{s}`?")),
                        None if !known.is_empty() => {
                            Some(format!("expected one of: {}", known.join(", ")))
                        }
                        None => None,
                    };
                    errors.push(e);
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let message = format!("missing field `{name}`");
                errors.push(if pointer.is_empty() {
                    // The top level has no line of its own to point at (its
                    // "span" would be the first line, often a comment).
                    ConfigError::root(message).with_help(format!(
                        "add {name} = ... near the top of the file, before the first [section]"
                    ))
                } else {
                    error_at(doc, &pointer, true, message)
                });
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => type_name(&t.to_string()),
                    TypeKind::Multiple(ts) => ts
                        .iter()
                        .map(|t| type_name(&t.to_string()))
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                let found = json_type(error.instance());
                errors.push(error_at(
                    doc,
                    &pointer,
                    false,
                    format!("expected {expected}, found {found}"),
                ));
            }
            ValidationErrorKind::Enum { options } => {
                let options: Vec<String> = options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                errors.push(not_one_of(doc, &pointer, error.instance(), &options));
            }
            // schemars writes an enum whose variants have doc comments as a
            // `oneOf` of `const`s; report it like an `enum`, not as "not
            // valid under any of the schemas listed in the 'oneOf' keyword".
            // An optional such enum is an `anyOf` of that `oneOf` and `null`.
            ValidationErrorKind::OneOfNotValid { context }
            | ValidationErrorKind::AnyOf { context }
                if const_options(context).is_some() =>
            {
                let options = const_options(context).unwrap_or_default();
                errors.push(not_one_of(doc, &pointer, error.instance(), &options));
            }
            ValidationErrorKind::Pattern { pattern } if pattern == SECRET_PATTERN => {
                errors.push(literal_secret(doc, &pointer));
            }
            ValidationErrorKind::Pattern { pattern } => {
                let got = error.instance().as_str().unwrap_or_default().to_owned();
                let mut e = error_at(
                    doc,
                    &pointer,
                    false,
                    format!("`{got}` is not a valid value here"),
                );
                e.help = Some(if pointer == "/name" {
                    "a pipeline name starts with a letter and has only letters, digits, `_` and `-` (at most 63)"
                        .to_owned()
                } else {
                    format!("it must match {pattern}")
                });
                errors.push(e);
            }
            ValidationErrorKind::MinItems { .. } | ValidationErrorKind::MinProperties { .. } => {
                errors.push(error_at(
                    doc,
                    &pointer,
                    false,
                    "must not be empty".to_owned(),
                ));
            }
            _ => errors.push(error_at(doc, &pointer, false, error.to_string())),
        }
    }
}

/// "`got` is not one of: ...", with a suggestion for a near miss.
fn not_one_of(
    doc: &SpannedDocument,
    pointer: &str,
    instance: &Json,
    options: &[String],
) -> ConfigError {
    match instance.as_str() {
        Some(got) => {
            let mut e = error_at(
                doc,
                pointer,
                false,
                format!("`{got}` is not one of: {}", options.join(", ")),
            );
            if let Some(s) = suggest(got, options.iter().map(String::as_str)) {
                e.help = Some(format!("did you mean `{s}`?"));
            }
            e
        }
        None => error_at(
            doc,
            pointer,
            false,
            format!("expected a string, found {}", json_type(instance)),
        )
        .with_help(format!("one of: {}", options.join(", "))),
    }
}

/// The strings a failed `oneOf`/`anyOf` would have accepted, if every
/// branch is a `const` string (or such a `oneOf`/`anyOf` itself, or the
/// `null` of an optional field).
fn const_options(context: &[Vec<jsonschema::ValidationError<'_>>]) -> Option<Vec<String>> {
    let mut options = Vec::new();
    for branch in context {
        let mut found = false;
        for e in branch {
            match e.kind() {
                ValidationErrorKind::Constant { expected_value } => {
                    options.push(expected_value.as_str()?.to_owned());
                    found = true;
                }
                ValidationErrorKind::OneOfNotValid { context }
                | ValidationErrorKind::AnyOf { context } => {
                    options.extend(const_options(context)?);
                    found = true;
                }
                ValidationErrorKind::Type {
                    kind: TypeKind::Single(t),
                } if t.to_string() == "null" => found = true,
                _ => {}
            }
        }
        if !found {
            return None;
        }
    }
    (!options.is_empty()).then_some(options)
}

/// The property names the schema allows where `additionalProperties` failed.
fn allowed_properties(schema: &Json, schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    let mut node = schema;
    for segment in parent.split('/').filter(|s| !s.is_empty()) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        node = match node.get(&segment) {
            Some(n) => n,
            None => return Vec::new(),
        };
        // Follow a local `$ref` as the validator did.
        while let Some(r) = node.get("$ref").and_then(Json::as_str) {
            match r.strip_prefix('#').and_then(|p| schema.pointer(p)) {
                Some(target) => node = target,
                None => break,
            }
        }
    }
    node.get("properties")
        .and_then(Json::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// A JSON Schema type as a TOML user would say it, e.g. `object` → `a table`.
fn type_name(schema_type: &str) -> String {
    match schema_type {
        "null" => "nothing".to_owned(),
        "object" => "a table".to_owned(),
        "array" | "integer" => format!("an {schema_type}"),
        other => format!("a {other}"),
    }
}

fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "nothing",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a float",
        Json::Number(_) => "an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "a table",
    }
}
