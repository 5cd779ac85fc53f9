//! Data-driven tests of pipeline-file validation.
//!
//! * `tests/bad/*.toml`: each file is wrong in the way its first (comment)
//!   line says; the rendered errors are snapshotted, one snapshot per file.
//! * `tests/good/*.toml`: each file loads and writes back byte for byte.
//! * The JSON Schema of pipeline files is well formed, documented, and
//!   snapshotted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

/// The `*.toml` files of `tests/<dir>`, sorted by name, as
/// (case name, path relative to the crate, absolute path).
fn cases(dir: &str) -> Vec<(String, PathBuf, PathBuf)> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let folder = crate_dir.join("tests").join(dir);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&folder).expect("read test folder") {
        let path = entry.expect("read test folder entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let file_name = path.file_name().expect("file name").to_string_lossy();
            let name = file_name.trim_end_matches(".toml").to_owned();
            let relative = Path::new("tests").join(dir).join(&*file_name);
            out.push((name, relative, path));
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Validation errors of a bad file (panics if it loads).
fn errors_of(relative: &Path, absolute: &Path) -> syncline_engine::config::ConfigErrors {
    match syncline_app::parse(relative, read(absolute)) {
        Ok(_) => panic!("{} should not load", relative.display()),
        Err(errors) => errors,
    }
}

#[test]
fn bad_files_are_reported_with_positions() {
    let cases = cases("bad");
    assert!(
        cases.len() >= 18,
        "expected at least 18 bad files, found {}",
        cases.len()
    );
    for (name, relative, absolute) in cases {
        let text = read(&absolute);
        let what = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix('#'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name}: first line must be a comment saying what is wrong"));

        let errors = errors_of(&relative, &absolute);
        assert!(!errors.errors.is_empty(), "{name}: no errors reported");
        let shown = relative.display().to_string();
        for error in &errors.errors {
            let whole_file = error.field.is_empty() && error.span.is_none();
            assert!(
                whole_file || errors.line_column(error).is_some(),
                "{name}: error without a position: {error:?}"
            );
        }
        let rendered = errors.render();
        assert!(
            rendered.contains(&shown),
            "{name}: rendered errors do not name {shown}:\n{rendered}"
        );
        // Every error is rendered, and the summary line counts them all.
        for error in &errors.errors {
            assert!(
                rendered.contains(&error.message),
                "{name}: `{}` is not rendered:\n{rendered}",
                error.message
            );
        }
        let n = errors.errors.len();
        let summary = format!("{n} error{} in {shown}\n", if n == 1 { "" } else { "s" });
        assert!(
            rendered.ends_with(&summary),
            "{name}: summary line missing:\n{rendered}"
        );

        insta::with_settings!({
            description => what,
            input_file => &absolute,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name.as_str(), rendered);
        });
    }
}

/// (field path, line) of each error, in order.
fn positions(name: &str) -> Vec<(String, usize)> {
    let relative = Path::new("tests/bad").join(format!("{name}.toml"));
    let absolute = Path::new(env!("CARGO_MANIFEST_DIR")).join(&relative);
    let errors = errors_of(&relative, &absolute);
    errors
        .errors
        .iter()
        .map(|e| {
            let (line, _) = errors.line_column(e).expect("position");
            (e.field.clone(), line)
        })
        .collect()
}

fn expect(list: &[(&str, usize)]) -> Vec<(String, usize)> {
    list.iter().map(|(f, l)| ((*f).to_owned(), *l)).collect()
}

#[test]
fn every_error_of_a_file_is_reported_together() {
    // Problems found by the schemas of the file and of each section.
    assert_eq!(
        positions("many_errors"),
        expect(&[
            ("name", 2),
            ("owner", 3),
            ("sources.shop.password", 8),
            ("sources.shop.password", 8),
            ("sources.shop.tables[0]", 10),
            ("sources.shop.tables[0].patern", 12),
            ("sources.shop.tables[0].key", 13),
            ("sources.shop.tables[0].mode", 14),
            ("targets.warehouse.mode", 20),
            ("targets.lake.kind", 23),
        ])
    );
    // Problems between sections.
    assert_eq!(
        positions("many_reference_errors"),
        expect(&[
            ("sources.shop.tables[0].mode", 12),
            ("sources.shop.tables[1].name", 16),
            ("transforms.paid.input", 25),
            ("targets.warehouse.inputs[0]", 31),
            ("targets.warehouse.inputs[1]", 31),
            ("targets.warehouse.inputs[2]", 31),
        ])
    );
}

#[test]
fn good_files_load_and_write_back_byte_for_byte() {
    let cases = cases("good");
    assert!(!cases.is_empty(), "no good files");
    for (name, relative, absolute) in cases {
        let text = read(&absolute);
        let pipeline = match syncline_app::parse(&relative, text.clone()) {
            Ok(p) => p,
            Err(e) => panic!("{name} should load:\n{}", e.render()),
        };
        assert_eq!(pipeline.to_toml(), text, "{name}: write-back differs");

        let loaded = match syncline_app::load(&absolute) {
            Ok(p) => p,
            Err(e) => panic!("{name} should load from disk:\n{}", e.render()),
        };
        assert_eq!(loaded.to_toml(), text, "{name}: write-back differs");
        assert_eq!(loaded.spec, pipeline.spec, "{name}: load and parse differ");
    }
}

#[test]
fn messy_good_file_is_read_as_written() {
    use syncline_app::{SourceConfig, TargetConfig};
    let absolute = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good/messy.toml");
    let pipeline = syncline_app::load(&absolute).unwrap_or_else(|e| panic!("{}", e.render()));
    let spec = &pipeline.spec;
    assert_eq!(spec.name, "messy-pipeline_01");
    assert_eq!(
        spec.description.as_deref(),
        Some(r#"literal string with "quotes" and \backslashes"#)
    );
    let SourceConfig::Files(shop) = &spec.sources["shop"] else {
        panic!("shop is a files source");
    };
    assert_eq!(shop.batch_rows, 5_000);
    assert_eq!(shop.debounce_ms, 500);
    assert_eq!(shop.tables[0].key, ["order_id", "line_no"]);
    assert_eq!(shop.tables[0].delimiter, ';');
    assert_eq!(shop.tables[0].columns["created at"], "timestamp");
    let SourceConfig::Files(feeds) = &spec.sources["feeds"] else {
        panic!("feeds is a files source");
    };
    assert_eq!(feeds.tables.len(), 2);
    assert_eq!(feeds.tables[1].delimiter, '\t');
    let TargetConfig::Duckdb(log) = &spec.targets["log"] else {
        panic!("log is a duckdb target");
    };
    assert_eq!(log.inputs, ["shop"]);
    assert!(
        spec.transforms["big_orders"]
            .sql
            .contains("WHERE amount > 100")
    );
}

const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "integer", "string",
];

/// Checks that `node` is a well-formed JSON Schema (draft 2020-12) node:
/// keywords have the types the meta-schema requires, subschemas are schemas,
/// and every `$ref` resolves within the document.
fn check_schema(node: &Json, root: &Json, at: &str, problems: &mut Vec<String>) {
    let obj = match node {
        Json::Bool(_) => return,
        Json::Object(o) => o,
        other => {
            problems.push(format!(
                "{at}: a schema must be an object or boolean, not {other}"
            ));
            return;
        }
    };
    for (key, value) in obj {
        let here = format!("{at}/{key}");
        let ok = match key.as_str() {
            "$schema" | "$id" | "$comment" | "title" | "description" | "format" => {
                value.is_string()
            }
            "pattern" => value.is_string(),
            "$ref" => match value.as_str().and_then(|r| r.strip_prefix('#')) {
                Some(pointer) => {
                    if root.pointer(pointer).is_none() {
                        problems.push(format!("{here}: `$ref` {value} does not resolve"));
                    }
                    true
                }
                None => false,
            },
            "type" => match value {
                Json::String(t) => TYPES.contains(&t.as_str()),
                Json::Array(ts) => ts
                    .iter()
                    .all(|t| t.as_str().is_some_and(|t| TYPES.contains(&t))),
                _ => false,
            },
            "properties" | "$defs" | "definitions" | "patternProperties" => {
                match value.as_object() {
                    Some(children) => {
                        for (name, child) in children {
                            check_schema(child, root, &format!("{here}/{name}"), problems);
                        }
                        true
                    }
                    None => false,
                }
            }
            "additionalProperties"
            | "items"
            | "not"
            | "propertyNames"
            | "contains"
            | "if"
            | "then"
            | "else"
            | "unevaluatedProperties" => {
                check_schema(value, root, &here, problems);
                true
            }
            "oneOf" | "anyOf" | "allOf" | "prefixItems" => match value.as_array() {
                Some(items) if !items.is_empty() => {
                    for (i, child) in items.iter().enumerate() {
                        check_schema(child, root, &format!("{here}/{i}"), problems);
                    }
                    true
                }
                _ => false,
            },
            "required" => value.as_array().is_some_and(|names| {
                names.iter().all(Json::is_string)
                    && names
                        .iter()
                        .filter_map(Json::as_str)
                        .collect::<BTreeSet<_>>()
                        .len()
                        == names.len()
            }),
            "enum" => value.is_array(),
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
            | "maxProperties" => value.is_u64(),
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" | "multipleOf" => {
                value.is_number()
            }
            "uniqueItems" | "deprecated" | "readOnly" | "writeOnly" => value.is_boolean(),
            // Annotations and extensions may hold anything.
            "const" | "default" | "examples" => true,
            k if k.starts_with("x-") => true,
            _ => {
                problems.push(format!("{here}: unknown keyword `{key}`"));
                true
            }
        };
        if !ok {
            problems.push(format!("{here}: invalid value {value}"));
        }
    }
    // Every required property of an object schema is declared.
    if let (Some(required), Some(props)) = (
        obj.get("required").and_then(Json::as_array),
        obj.get("properties").and_then(Json::as_object),
    ) {
        let closed = obj.get("additionalProperties") == Some(&Json::Bool(false));
        for name in required.iter().filter_map(Json::as_str) {
            if closed && !props.contains_key(name) {
                problems.push(format!("{at}: required `{name}` is not a property"));
            }
        }
    }
}

/// Every `description` in the schema.
fn descriptions(node: &Json, out: &mut Vec<String>) {
    match node {
        Json::Object(o) => {
            for (k, v) in o {
                match v {
                    Json::String(s) if k == "description" => out.push(s.clone()),
                    _ => descriptions(v, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|v| descriptions(v, out)),
        _ => {}
    }
}

#[test]
fn schema_is_valid_json_schema_with_descriptions() {
    let schema = syncline_app::schema();

    let mut problems = Vec::new();
    check_schema(&schema, &schema, "", &mut problems);
    assert!(
        problems.is_empty(),
        "invalid schema:\n{}",
        problems.join("\n")
    );

    assert!(
        schema["$schema"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://json-schema.org/")),
        "no $schema: {schema}"
    );
    assert_eq!(schema["type"], "object");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Json::as_str)
        .collect();
    for field in ["name", "sources", "targets"] {
        assert!(required.contains(&field), "`{field}` not required");
    }
    for field in ["name", "description", "sources", "transforms", "targets"] {
        assert!(
            schema["properties"].get(field).is_some(),
            "no property `{field}`"
        );
    }
    assert_eq!(schema["properties"]["sources"]["type"], "object");
    assert_eq!(schema["properties"]["targets"]["type"], "object");

    // Doc comments become descriptions: of the file, the connector enums
    // and their variants, and the connector config fields.
    let mut found = Vec::new();
    descriptions(&schema, &mut found);
    for expected in [
        "Where data comes from, by name.",
        "Where data goes, by name.",
        "A folder of CSV, JSON-lines or Parquet files, watched for changes.",
        "A DuckDB database file.",
        "The folder, relative to the pipeline file.",
        "Glob relative to the folder, e.g. `orders/*.csv` or `**/*.parquet`.",
        "Database file, relative to the pipeline file. Created if missing.",
        "Keep one row per key: inserts and updates replace, deletes remove.\nEvery input table needs a key.",
    ] {
        assert!(
            found.iter().any(|d| d == expected),
            "description {expected:?} missing; found:\n{found:#?}"
        );
    }
    // Both connector kinds are named in the schema.
    let text = serde_json::to_string_pretty(&schema).expect("schema as JSON");
    assert!(text.contains(r#""const": "files""#), "no files kind");
    assert!(text.contains(r#""const": "duckdb""#), "no duckdb kind");

    insta::assert_snapshot!("schema", text);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 512,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// Good files with random bytes cut, repeated or replaced never make
    /// the parser panic: each loads, or is refused with errors to show.
    #[test]
    fn mutated_files_never_panic(
        which in 0usize..64,
        edits in proptest::collection::vec((0usize..4096, 0u8..4, proptest::prelude::any::<u8>()), 1..6),
    ) {
        let good = cases("good");
        let (_, relative, absolute) = &good[which % good.len()];
        let mut bytes = read(absolute).into_bytes();
        for (at, op, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = at % bytes.len();
            match op {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, byte),
                2 => {
                    let end = (at + 1 + usize::from(byte % 16)).min(bytes.len());
                    let piece = bytes[at..end].to_vec();
                    bytes.splice(at..at, piece);
                }
                _ => {
                    let tokens = b" =[]\"'.#\n,{}x1";
                    bytes[at] = tokens[usize::from(byte) % tokens.len()];
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(errors) = syncline_app::parse(relative, text) {
            let rendered = errors.render();
            proptest::prop_assert!(!rendered.is_empty());
        }
    }
}

/// A secret written into a file is refused without being shown back: every
/// rendering of the errors masks it, however many errors point at its line.
#[test]
fn a_literal_secret_is_never_echoed() {
    for (file, secret) in [
        ("literal_password", "hunter2"),
        ("literal_api_token", "sk_live_51Habc"),
    ] {
        let relative = Path::new("tests").join("bad").join(format!("{file}.toml"));
        let absolute = Path::new(env!("CARGO_MANIFEST_DIR")).join(&relative);
        assert!(read(&absolute).contains(secret), "{file} holds no secret");
        let rendered = errors_of(&relative, &absolute).render();
        assert!(
            rendered.contains("a secret is written into the file"),
            "{rendered}"
        );
        assert!(
            !rendered.contains(secret),
            "{file}: the secret is shown:\n{rendered}"
        );
    }
}
