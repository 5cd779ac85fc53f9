//! Values → COPY text: the Postgres column type of each engine type, and
//! the input text of each value as `COPY ... FROM STDIN` (text format) reads
//! it.
//!
//! # Type map
//!
//! | engine        | Postgres                   | COPY text form                     |
//! |---------------|----------------------------|------------------------------------|
//! | boolean       | `boolean`                  | `t` / `f`                          |
//! | int           | `integer`                  | decimal                            |
//! | bigint        | `bigint`                   | decimal                            |
//! | double        | `double precision`         | shortest exact form, `NaN`, `Infinity` |
//! | decimal(p,s)  | `numeric(p,s)`             | exact text, never rounded          |
//! | text          | `text`                     | as is                              |
//! | bytes         | `bytea`                    | `\x` hex                           |
//! | date          | `date`                     | ISO, `BC` before year 1            |
//! | time          | `time`                     | `HH:MM:SS.ffffff`                  |
//! | timestamp     | `timestamp`                | ISO with µs, `infinity`            |
//! | timestamptz   | `timestamptz`              | ISO with µs and `+00`              |
//! | interval      | `interval`                 | `M mons D days U microseconds`     |
//! | uuid          | `uuid`                     | hyphenated hex                     |
//! | json          | `jsonb`                    | the JSON text (normalised by jsonb)|
//! | T[]           | `T[]`                      | array literal, every item quoted   |
//!
//! Values that do not fit their column (a decimal with more digits than the
//! column's scale, an integer out of range, text into a date, ...) and
//! values Postgres cannot store ([`refuses`]: text with NUL characters, an
//! infinite `numeric(p,s)`, dates outside its range) become dead letters
//! of their row before anything is staged; nothing is rounded, truncated
//! or turned into NULL silently.

use std::fmt::Write as _;

use syncline_engine::model::{DataType, DecimalParts, Value, is_decimal_special};

/// The Postgres type of a column of engine type `t` (see the module's type
/// map).
pub fn postgres_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
        DataType::Text => "text".into(),
        DataType::Bytes => "bytea".into(),
        DataType::Date => "date".into(),
        DataType::Time => "time".into(),
        DataType::Timestamp => "timestamp".into(),
        DataType::TimestampTz => "timestamptz".into(),
        DataType::Uuid => "uuid".into(),
        DataType::Json => "jsonb".into(),
        DataType::Interval => "interval".into(),
        // Postgres arrays have no fixed dimensions: a list of lists is a
        // two-dimensional array of the same type.
        DataType::List { item } => match &**item {
            DataType::List { .. } => postgres_type(item),
            other => format!("{}[]", postgres_type(other)),
        },
    }
}

/// Appends the Postgres input text of `v` as a value of type `t` to `out`.
/// Returns `false` (and appends nothing) for NULL.
pub fn value_text(t: &DataType, v: &Value, out: &mut String) -> Result<bool, String> {
    let bad = |v: &Value| -> String {
        let mut shown = format!("{v:?}");
        if shown.len() > 80 {
            let mut end = 77;
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
            shown.push_str("...");
        }
        format!("{shown} is not a {t}")
    };
    if matches!(v, Value::Null | Value::Unchanged) {
        return Ok(false);
    }
    match (t, v) {
        (DataType::Boolean, Value::Bool(b)) => out.push(if *b { 't' } else { 'f' }),
        (DataType::Int32, Value::Int(x)) => {
            let x = i32::try_from(*x).map_err(|_| format!("{x} is out of range for int"))?;
            let _ = write!(out, "{x}");
        }
        (DataType::Int64, Value::Int(x)) => {
            let _ = write!(out, "{x}");
        }
        (DataType::Float64, Value::Float(f)) => {
            if f.is_nan() {
                out.push_str("NaN");
            } else if f.is_infinite() {
                out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" });
            } else {
                // Rust prints the shortest text that reads back as the same
                // double; Postgres reads it exactly.
                let _ = write!(out, "{f}");
            }
        }
        (DataType::Float64, Value::Int(x)) => {
            let _ = write!(out, "{x}");
        }
        (DataType::Decimal { .. }, Value::Decimal(text)) if is_decimal_special(text) => {
            out.push_str(text);
        }
        (DataType::Decimal { precision, scale }, Value::Decimal(text)) => {
            out.push_str(&exact_decimal(text, *precision, *scale).ok_or_else(|| {
                format!("{text} does not fit decimal({precision},{scale}) without rounding")
            })?);
        }
        (DataType::Decimal { precision, scale }, Value::Int(x)) => {
            let text = x.to_string();
            out.push_str(
                &exact_decimal(&text, *precision, *scale)
                    .ok_or_else(|| format!("{x} does not fit decimal({precision},{scale})"))?,
            );
        }
        (DataType::Text, Value::Text(s) | Value::Json(s)) => push_text(out, s)?,
        (DataType::Text, Value::Uuid(u)) => out.push_str(&format_uuid(u)),
        (DataType::Bytes, Value::Bytes(b)) => {
            out.reserve(2 + 2 * b.len());
            out.push_str("\\x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        (DataType::Date, Value::Date(i32::MAX)) => out.push_str("infinity"),
        (DataType::Date, Value::Date(i32::MIN)) => out.push_str("-infinity"),
        (DataType::Date, Value::Date(d)) => push_date(out, i64::from(*d)),
        (DataType::Time, Value::Time(t)) => {
            if !(0..=86_400_000_000).contains(t) {
                return Err(format!("{t} µs is not a time of day"));
            }
            push_time(out, *t);
        }
        (
            DataType::Timestamp | DataType::TimestampTz,
            Value::Timestamp(ts) | Value::TimestampTz(ts),
        ) => push_timestamp(out, *ts, *t == DataType::TimestampTz),
        (DataType::Uuid, Value::Uuid(u)) => out.push_str(&format_uuid(u)),
        // Text is parsed (and checked) by Postgres.
        (DataType::Uuid | DataType::Json | DataType::Interval, Value::Text(s)) => {
            push_text(out, s)?
        }
        (DataType::Json, Value::Json(s)) => push_text(out, s)?,
        (
            DataType::Interval,
            Value::Interval {
                months,
                days,
                micros,
            },
        ) => {
            let _ = write!(out, "{months} mons {days} days {micros} microseconds");
        }
        (DataType::List { item }, Value::List(items)) => push_array(out, item, items)?,
        (_, other) => return Err(bad(other)),
    }
    Ok(true)
}

/// Days from 1970-01-01 of the first and last dates Postgres stores
/// (4714-11-24 BC and 5874897-12-31).
const PG_DAYS: std::ops::RangeInclusive<i32> = -2_440_588..=2_145_042_905;
/// Microseconds from 1970-01-01 of the first timestamp Postgres stores
/// (4714-11-24 00:00 BC); every later one an `i64` holds fits.
const PG_FIRST_MICROS: i64 = -210_866_803_200_000_000;

/// Why Postgres cannot store `value` in a column of type `t`, or `None`:
/// text with a NUL character, `\u0000` in a JSON document (`jsonb`),
/// an infinite `numeric(p,s)`, a date or timestamp outside Postgres's
/// range, a time of day past 24:00. Values that fit the column's type but
/// not Postgres become dead letters this way, in this target only.
pub fn refuses(t: &DataType, value: &Value) -> Option<String> {
    match (t, value) {
        (_, Value::Text(s) | Value::Json(s)) if s.contains('\0') => {
            Some("Postgres text cannot hold the NUL character (U+0000)".into())
        }
        (DataType::Json, Value::Text(s) | Value::Json(s)) if json_has_nul_escape(s) => {
            Some("Postgres jsonb cannot hold \\u0000 in a string".into())
        }
        (DataType::Decimal { precision, scale }, Value::Decimal(d)) if d.ends_with("Infinity") => {
            Some(format!(
                "Postgres numeric({precision},{scale}) cannot hold an infinite value"
            ))
        }
        (DataType::Date, Value::Date(d))
            if *d != i32::MAX && *d != i32::MIN && !PG_DAYS.contains(d) =>
        {
            Some("the date is outside Postgres's range (4714 BC to 5874897 AD)".into())
        }
        (
            DataType::Timestamp | DataType::TimestampTz,
            Value::Timestamp(t) | Value::TimestampTz(t),
        ) if *t != i64::MIN && *t < PG_FIRST_MICROS => {
            Some("the timestamp is before Postgres's first (4714-11-24 BC)".into())
        }
        (DataType::Time, Value::Time(t)) if !(0..=86_400_000_000).contains(t) => {
            Some("the time of day is outside 00:00 to 24:00".into())
        }
        (DataType::List { item }, Value::List(items)) => {
            items.iter().find_map(|v| refuses(item, v))
        }
        _ => None,
    }
}

/// Whether JSON text holds the escape `\u0000` (outside an escaped
/// backslash), which `jsonb` refuses.
fn json_has_nul_escape(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b[i + 1..].starts_with(b"u0000") {
                return true;
            }
            // Skip the escaped character (`\\` included).
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

fn push_text(out: &mut String, s: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err("text contains a NUL character, which Postgres cannot store".into());
    }
    out.push_str(s);
    Ok(())
}

/// An array literal: `{"a","b",NULL}`; nested lists as nested braces.
fn push_array(out: &mut String, item: &DataType, items: &[Value]) -> Result<(), String> {
    out.push('{');
    let mut text = String::new();
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match (item, v) {
            (_, Value::Null | Value::Unchanged) => out.push_str("NULL"),
            (DataType::List { item: inner }, Value::List(nested)) => {
                push_array(out, inner, nested)?
            }
            _ => {
                text.clear();
                value_text(item, v, &mut text)?;
                out.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    Ok(())
}

/// Exact decimal text that fits `numeric(precision, scale)` without
/// rounding; `None` if it does not (or is not a plain decimal).
pub fn exact_decimal(text: &str, precision: u8, scale: u8) -> Option<String> {
    let DecimalParts {
        negative,
        int,
        frac,
    } = DecimalParts::parse(text)?;
    if frac.len() > usize::from(scale) || int.len() > usize::from(precision.saturating_sub(scale)) {
        return None;
    }
    let mut out = String::with_capacity(int.len() + frac.len() + 3);
    if negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01
/// (year 0 is 1 BC).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD`; returns whether the year is BC (the caller appends ` BC`).
fn push_ymd(out: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days);
    let (year, bc) = if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    };
    let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    bc
}

fn push_date(out: &mut String, days: i64) {
    if push_ymd(out, days) {
        out.push_str(" BC");
    }
}

fn push_time(out: &mut String, micros: i64) {
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{:06}",
        micros / 3_600_000_000,
        micros / 60_000_000 % 60,
        micros / 1_000_000 % 60,
        micros % 1_000_000
    );
}

fn push_timestamp(out: &mut String, micros: i64, tz: bool) {
    match micros {
        i64::MAX => out.push_str("infinity"),
        i64::MIN => out.push_str("-infinity"),
        _ => {
            let days = micros.div_euclid(86_400_000_000);
            let bc = push_ymd(out, days);
            out.push(' ');
            push_time(out, micros.rem_euclid(86_400_000_000));
            if tz {
                out.push_str("+00");
            }
            if bc {
                out.push_str(" BC");
            }
        }
    }
}

/// Canonical lowercase hyphenated UUID text.
fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Appends one field of COPY text format: backslash, tab, newline and
/// carriage return escaped.
pub(crate) fn push_copy_field(out: &mut Vec<u8>, text: &str) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

/// The COPY NULL marker.
pub(crate) const COPY_NULL: &[u8] = b"\\N";

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &DataType, v: &Value) -> Result<Option<String>, String> {
        let mut out = String::new();
        value_text(t, v, &mut out).map(|some| some.then_some(out))
    }

    fn copy_field(s: &str) -> String {
        let mut out = Vec::new();
        push_copy_field(&mut out, s);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        assert_eq!(exact_decimal("12.50", 4, 2).as_deref(), Some("12.5"));
        assert_eq!(exact_decimal("+007", 3, 0).as_deref(), Some("7"));
        assert_eq!(exact_decimal("-0.000", 3, 2).as_deref(), Some("0"));
        assert_eq!(exact_decimal("-.5", 3, 2).as_deref(), Some("-0.5"));
        assert_eq!(exact_decimal("1.005", 5, 2), None);
        assert_eq!(exact_decimal("100", 4, 2), None);
        assert_eq!(exact_decimal("1e5", 10, 2), None);
        assert_eq!(exact_decimal("NaN", 10, 2), None);
        assert_eq!(exact_decimal(".", 10, 2), None);
        assert_eq!(
            exact_decimal("99999999999999999999.999999999999999999", 38, 18).as_deref(),
            Some("99999999999999999999.999999999999999999")
        );
    }

    #[test]
    fn dates_and_times_render_as_postgres_reads_them() {
        let ts = |m| text(&DataType::Timestamp, &Value::Timestamp(m));
        assert_eq!(
            text(&DataType::Date, &Value::Date(0)),
            Ok(Some("1970-01-01".into()))
        );
        assert_eq!(
            text(&DataType::Date, &Value::Date(19_782)),
            Ok(Some("2024-02-29".into()))
        );
        // 44 BC is year -43.
        assert_eq!(
            text(&DataType::Date, &Value::Date(-735_160)),
            Ok(Some("0044-03-15 BC".into()))
        );
        assert_eq!(ts(-1), Ok(Some("1969-12-31 23:59:59.999999".into())));
        assert_eq!(ts(i64::MAX), Ok(Some("infinity".into())));
        assert_eq!(ts(i64::MIN), Ok(Some("-infinity".into())));
        assert_eq!(
            text(
                &DataType::TimestampTz,
                &Value::TimestampTz(1_709_210_096_789_012)
            ),
            Ok(Some("2024-02-29 12:34:56.789012+00".into()))
        );
        assert_eq!(
            text(&DataType::Time, &Value::Time(86_400_000_000)),
            Ok(Some("24:00:00.000000".into()))
        );
        assert!(text(&DataType::Time, &Value::Time(-1)).is_err());
    }

    #[test]
    fn scalars_render_and_mismatches_are_refused() {
        assert_eq!(
            text(&DataType::Float64, &Value::Float(f64::NEG_INFINITY)),
            Ok(Some("-Infinity".into()))
        );
        assert_eq!(
            text(&DataType::Float64, &Value::Float(0.1)),
            Ok(Some("0.1".into()))
        );
        assert_eq!(
            text(&DataType::Bytes, &Value::Bytes(vec![0, 0x5c, 0xff])),
            Ok(Some("\\x005cff".into()))
        );
        assert_eq!(
            text(
                &DataType::Interval,
                &Value::Interval {
                    months: -1,
                    days: 2,
                    micros: -3
                }
            ),
            Ok(Some("-1 mons 2 days -3 microseconds".into()))
        );
        assert_eq!(text(&DataType::Text, &Value::Null), Ok(None));
        assert_eq!(text(&DataType::Text, &Value::Unchanged), Ok(None));
        assert!(text(&DataType::Int32, &Value::Int(1 << 40)).is_err());
        assert!(text(&DataType::Float64, &Value::Text("1.5".into())).is_err());
        assert!(
            text(
                &DataType::Decimal {
                    precision: 5,
                    scale: 2
                },
                &Value::Float(1.5)
            )
            .is_err()
        );
        assert!(text(&DataType::Text, &Value::Text("a\0b".into())).is_err());
        let err = text(&DataType::Date, &Value::Text("x".repeat(500))).expect_err("refused");
        assert!(err.len() < 120, "{err}");
    }

    #[test]
    fn arrays_quote_every_item() {
        let list = |item: DataType| DataType::List {
            item: Box::new(item),
        };
        assert_eq!(
            text(
                &list(DataType::Text),
                &Value::List(vec![
                    Value::Text("a,b".into()),
                    Value::Null,
                    Value::Text("NULL".into()),
                    Value::Text("say \"hi\" \\o/".into()),
                    Value::Text(String::new()),
                ])
            ),
            Ok(Some(r#"{"a,b",NULL,"NULL","say \"hi\" \\o/",""}"#.into()))
        );
        assert_eq!(
            text(
                &list(DataType::Bytes),
                &Value::List(vec![Value::Bytes(vec![1])])
            ),
            Ok(Some(r#"{"\\x01"}"#.into()))
        );
        assert_eq!(
            text(
                &list(list(DataType::Int32)),
                &Value::List(vec![
                    Value::List(vec![Value::Int(1), Value::Int(2)]),
                    Value::List(vec![Value::Int(3), Value::Null]),
                ])
            ),
            Ok(Some(r#"{{"1","2"},{"3",NULL}}"#.into()))
        );
        assert_eq!(postgres_type(&list(list(DataType::Int32))), "integer[]");
        assert_eq!(
            text(&list(DataType::Int64), &Value::List(vec![])),
            Ok(Some("{}".into()))
        );
    }

    #[test]
    fn copy_fields_escape_what_copy_text_reads_specially() {
        assert_eq!(copy_field("a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(copy_field("\\N"), "\\\\N");
        assert_eq!(copy_field("héllo ✓"), "héllo ✓");
    }
}
