//! Values as text and JSON, exactly: the form targets without a type
//! system of their own (a cache, a search index) keep rows in.
//!
//! | engine type | JSON | text |
//! |---|---|---|
//! | boolean | `true` / `false` | `true` / `false` |
//! | int32, int64 | number (exact) | decimal digits |
//! | float64 | number; NaN and ±infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (as the protobuf JSON mapping does) | the same text |
//! | decimal | string with the exact digits (`"12.50"`) | the same text |
//! | text | string | the text |
//! | bytes | string of lowercase hex | the same hex |
//! | date | `"2024-02-29"`, `"infinity"`, `"-infinity"` | the same text |
//! | time | `"13:14:15.123456"` | the same text |
//! | timestamp | `"2024-02-29T13:14:15.123456"`, `"infinity"`, `"-infinity"` | the same text |
//! | timestamptz | `"2024-02-29T13:14:15.123456Z"`, infinities as above | the same text |
//! | uuid | `"f81d4fae-7dec-11d0-a765-00a0c91e6bf6"` | the same text |
//! | json | the document itself, as written | the document's text |
//! | interval | ISO 8601 duration, `"P14M3DT3600.000001S"` | the same text |
//! | list | array of the items as above | the array's JSON text |
//!
//! NULL is JSON `null`. No value is turned into another or into NULL.

use std::fmt::Write as _;

use std::borrow::Cow;

use crate::model::{DataType, DecimalParts, Value};
use chrono::{DateTime, Datelike as _, NaiveDate, NaiveTime, Timelike as _};

/// `value` as its column's type writes it: a decimal with the column's
/// scale (`1.5` in a `decimal(10,2)` is `1.50`, as every path that carries
/// it gives it; an integer in a decimal column is that decimal), leading
/// zeros dropped, never rounded; anything else as it is.
pub fn conformed<'v>(data_type: &DataType, value: &'v Value) -> Cow<'v, Value> {
    let DataType::Decimal { scale, .. } = data_type else {
        return Cow::Borrowed(value);
    };
    let int;
    let text = match value {
        Value::Decimal(text) => text.as_str(),
        // An integer in a decimal column is that decimal.
        Value::Int(i) => {
            int = i.to_string();
            int.as_str()
        }
        _ => return Cow::Borrowed(value),
    };
    let Some(parts) = DecimalParts::parse(text) else {
        return Cow::Borrowed(value);
    };
    let width = usize::from(*scale).max(parts.frac.len());
    let sign = if parts.negative && !parts.is_zero() {
        "-"
    } else {
        ""
    };
    let int = if parts.int.is_empty() { "0" } else { parts.int };
    let written = if width == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{:0<width$}", parts.frac)
    };
    if matches!(value, Value::Decimal(t) if *t == written) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(Value::Decimal(written))
    }
}

/// The value as a JSON text fragment.
pub fn json(value: &Value) -> Result<String, String> {
    let mut out = String::new();
    write_json(value, &mut out)?;
    Ok(out)
}

/// `text` as a JSON string (serde_json escapes exactly as JSON requires).
pub fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn write_json(value: &Value, out: &mut String) -> Result<(), String> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => {
            out.push_str(&serde_json::Value::from(*f).to_string());
        }
        Value::Json(text) => {
            serde_json::from_str::<serde::de::IgnoredAny>(text)
                .map_err(|e| format!("the JSON document does not parse: {e}"))?;
            out.push_str(text.trim());
        }
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out)?;
            }
            out.push(']');
        }
        Value::Unchanged => {
            return Err("the value was left out by the source (unchanged)".into());
        }
        other => out.push_str(&quoted(&text(other)?)),
    }
    Ok(())
}

/// The text of a scalar value (also what it makes in a key or a hash field).
pub fn text(value: &Value) -> Result<String, String> {
    Ok(match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_nan() => "NaN".into(),
        Value::Float(f) if f.is_infinite() => {
            if *f > 0.0 { "Infinity" } else { "-Infinity" }.into()
        }
        Value::Float(f) => serde_json::Value::from(*f).to_string(),
        Value::Decimal(d) | Value::Text(d) | Value::Json(d) => d.clone(),
        // Lowercase hex and 8-4-4-4-12 UUIDs, as the engine shows them.
        Value::Bytes(_) | Value::Uuid(_) => match value.to_json() {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        },
        Value::Date(i32::MAX) => "infinity".into(),
        Value::Date(i32::MIN) => "-infinity".into(),
        Value::Date(days) => NaiveDate::from_num_days_from_ce_opt(days.saturating_add(719_163))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .ok_or_else(|| format!("date {days} days from 1970 is out of range"))?,
        Value::Time(us) => {
            let secs = u32::try_from(us.div_euclid(1_000_000)).map_err(|_| "time out of range")?;
            let nanos = u32::try_from(us.rem_euclid(1_000_000) * 1000).unwrap_or(0);
            NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
                .map(|t| t.format("%H:%M:%S%.6f").to_string())
                .ok_or_else(|| format!("time {us} µs is out of range"))?
        }
        Value::Timestamp(i64::MAX) | Value::TimestampTz(i64::MAX) => "infinity".into(),
        Value::Timestamp(i64::MIN) | Value::TimestampTz(i64::MIN) => "-infinity".into(),
        Value::Timestamp(us) => DateTime::from_timestamp_micros(*us)
            .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
            .ok_or_else(|| format!("timestamp {us} µs is out of range"))?,
        Value::TimestampTz(us) => DateTime::from_timestamp_micros(*us)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
            .ok_or_else(|| format!("timestamp {us} µs is out of range"))?,
        Value::Interval {
            months,
            days,
            micros,
        } => {
            let sign = if *micros < 0 { "-" } else { "" };
            let abs = micros.unsigned_abs();
            let (secs, frac) = (abs / 1_000_000, abs % 1_000_000);
            let seconds = if frac == 0 {
                format!("{sign}{secs}")
            } else {
                format!("{sign}{secs}.{frac:06}")
            };
            format!("P{months}M{days}DT{seconds}S")
        }
        Value::List(_) => json(value)?,
        Value::Unchanged => return Err("the value was left out by the source (unchanged)".into()),
    })
}

/// A value of a column of type `t` from the JSON [`json`] wrote: the way
/// back, for targets that keep rows as JSON (read back by verify).
pub fn parse_json(t: &DataType, doc: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match (t, doc) {
        (_, J::Null) => Value::Null,
        (DataType::Json, other) => Value::Json(other.to_string()),
        (DataType::List { item }, J::Array(items)) => Value::List(
            items
                .iter()
                .map(|i| parse_json(item, i))
                .collect::<Result<_, _>>()?,
        ),
        (DataType::Boolean, J::Bool(b)) => Value::Bool(*b),
        (DataType::Int32 | DataType::Int64, J::Number(n)) => {
            Value::Int(n.as_i64().ok_or_else(|| format!("{n} is not an integer"))?)
        }
        (DataType::Float64, J::Number(n)) => {
            Value::Float(n.as_f64().ok_or_else(|| format!("{n} is not a number"))?)
        }
        (_, J::String(s)) => parse_text(t, s)?,
        (_, other) => return Err(format!("{other} is not a {t}")),
    })
}

/// A value of a column of type `t` from the text [`text`] wrote.
pub fn parse_text(t: &DataType, s: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("{s:?} is not {what}");
    Ok(match t {
        DataType::Boolean => match s {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        DataType::Int32 | DataType::Int64 => Value::Int(s.parse().map_err(|_| bad("an integer"))?),
        DataType::Float64 => Value::Float(match s {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => s.parse().map_err(|_| bad("a number"))?,
        }),
        DataType::Decimal { .. } => Value::Decimal(s.to_owned()),
        DataType::Text => Value::Text(s.to_owned()),
        DataType::Json => Value::Json(s.to_owned()),
        DataType::Bytes => {
            if !s.len().is_multiple_of(2) {
                return Err(bad("hex"));
            }
            Value::Bytes(
                (0..s.len())
                    .step_by(2)
                    .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad("hex"))?,
            )
        }
        DataType::Uuid => Value::Uuid(crate::columnar::parse_uuid(s).ok_or_else(|| bad("a UUID"))?),
        DataType::Date => match s {
            "infinity" => Value::Date(i32::MAX),
            "-infinity" => Value::Date(i32::MIN),
            _ => {
                let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad("a date"))?;
                Value::Date(d.num_days_from_ce() - 719_163)
            }
        },
        DataType::Time => {
            let t = NaiveTime::parse_from_str(s, "%H:%M:%S%.f").map_err(|_| bad("a time"))?;
            Value::Time(
                i64::from(t.num_seconds_from_midnight()) * 1_000_000
                    + i64::from(t.nanosecond() / 1_000),
            )
        }
        DataType::Timestamp | DataType::TimestampTz => {
            let micros = match s {
                "infinity" => i64::MAX,
                "-infinity" => i64::MIN,
                _ if *t == DataType::Timestamp => {
                    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .map_err(|_| bad("a timestamp"))?
                        .and_utc()
                        .timestamp_micros()
                }
                _ => DateTime::parse_from_rfc3339(s)
                    .map_err(|_| bad("a timestamp with a zone"))?
                    .timestamp_micros(),
            };
            if *t == DataType::Timestamp {
                Value::Timestamp(micros)
            } else {
                Value::TimestampTz(micros)
            }
        }
        DataType::Interval => parse_interval(s).ok_or_else(|| bad("an interval"))?,
        DataType::List { .. } => {
            let doc: serde_json::Value = serde_json::from_str(s).map_err(|_| bad("a list"))?;
            parse_json(t, &doc)?
        }
    })
}

/// `P{months}M{days}DT{seconds}S`, as [`text`] writes intervals.
fn parse_interval(s: &str) -> Option<Value> {
    let rest = s.strip_prefix('P')?;
    let (months, rest) = rest.split_once('M')?;
    let (days, rest) = rest.split_once("DT")?;
    let seconds = rest.strip_suffix('S')?;
    let (negative, seconds) = match seconds.strip_prefix('-') {
        Some(s) => (true, s),
        None => (false, seconds),
    };
    let (whole, frac) = seconds.split_once('.').unwrap_or((seconds, ""));
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros = whole.parse::<i64>().ok()?.checked_mul(1_000_000)?
        + format!("{frac:0<6}").parse::<i64>().ok()?;
    Some(Value::Interval {
        months: months.parse().ok()?,
        days: days.parse().ok()?,
        micros: if negative { -micros } else { micros },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn what_is_written_reads_back_as_the_same_value() {
        let cases = [
            (DataType::Boolean, Value::Bool(true)),
            (DataType::Int64, Value::Int(i64::MIN)),
            (DataType::Float64, Value::Float(0.1)),
            (DataType::Float64, Value::Float(f64::NEG_INFINITY)),
            (
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
                Value::Decimal("-12.50".into()),
            ),
            (DataType::Text, Value::Text("q\"\n ü".into())),
            (DataType::Bytes, Value::Bytes(vec![0, 255, 16])),
            (DataType::Date, Value::Date(19_782)),
            (DataType::Date, Value::Date(i32::MIN)),
            (DataType::Time, Value::Time(86_399_999_999)),
            (DataType::Timestamp, Value::Timestamp(-1)),
            (
                DataType::TimestampTz,
                Value::TimestampTz(1_709_212_455_123_456),
            ),
            (DataType::TimestampTz, Value::TimestampTz(i64::MAX)),
            (DataType::Uuid, Value::Uuid([7; 16])),
            (DataType::Json, Value::Json(r#"{"a":[1,2.5]}"#.into())),
            (
                DataType::Interval,
                Value::Interval {
                    months: -1,
                    days: 2,
                    micros: -3_000_001,
                },
            ),
            (
                DataType::List {
                    item: Box::new(DataType::Date),
                },
                Value::List(vec![Value::Date(1), Value::Null]),
            ),
        ];
        for (t, v) in cases {
            let doc: serde_json::Value = serde_json::from_str(&json(&v).unwrap()).unwrap();
            let back = parse_json(&t, &doc).unwrap();
            let text_back = parse_text(&t, &text(&v).unwrap()).unwrap();
            for got in [back, text_back] {
                match (&v, &got) {
                    (Value::Float(a), Value::Float(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                    _ => assert_eq!(got, v, "{t}"),
                }
            }
        }
        assert!(parse_text(&DataType::Date, "2024-02-30").is_err());
        assert!(parse_json(&DataType::Int64, &serde_json::json!(1.5)).is_err());
    }

    #[test]
    fn decimals_take_their_column_scale_and_are_never_rounded() {
        let dec = DataType::Decimal {
            precision: 10,
            scale: 2,
        };
        let show = |t: &str| match conformed(&dec, &Value::Decimal(t.into())).into_owned() {
            Value::Decimal(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(show("1.5"), "1.50");
        assert_eq!(show("-0.5"), "-0.50");
        assert_eq!(show("7"), "7.00");
        assert_eq!(show("1.239"), "1.239");
        assert_eq!(show("001.50"), "1.50");
        assert_eq!(show("NaN"), "NaN");
        assert_eq!(
            conformed(&dec, &Value::Int(-3)).into_owned(),
            Value::Decimal("-3.00".into())
        );
    }

    #[test]
    fn values_keep_their_meaning() {
        assert_eq!(json(&Value::Float(f64::NAN)).unwrap(), "\"NaN\"");
        assert_eq!(json(&Value::Int(i64::MIN)).unwrap(), "-9223372036854775808");
        assert_eq!(json(&Value::Date(i32::MAX)).unwrap(), "\"infinity\"");
        assert_eq!(json(&Value::Date(19_782)).unwrap(), "\"2024-02-29\"");
        assert_eq!(
            json(&Value::Json(" {\"a\": 2.50} ".into())).unwrap(),
            "{\"a\": 2.50}"
        );
        assert!(json(&Value::Json("{".into())).is_err());
        assert_eq!(
            json(&Value::Interval {
                months: -1,
                days: -2,
                micros: -3
            })
            .unwrap(),
            "\"P-1M-2DT-0.000003S\""
        );
        assert_eq!(
            json(&Value::List(vec![Value::Text("q\"".into()), Value::Null])).unwrap(),
            "[\"q\\\"\",null]"
        );
    }
}
