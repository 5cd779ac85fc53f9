//! Values as the server sends them (the binary result protocol in the
//! snapshot, row events in the binary log) to engine values, by the
//! column's source type. Both paths go through [`decode`], so a row reads
//! the same from the copy and from the log.

use mysql_async::Value as MyValue;
use syncline_engine::model::Value;

use crate::introspect::MyType;

/// Seconds from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        _ => 28,
    }
}

/// Microseconds since the epoch of a civil date and time, or why it is no
/// instant (a zero date, a zero month or day).
fn civil_micros(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Result<i64, String> {
    if mo == 0 || d == 0 || mo > 12 || d > days_in_month(y, mo) {
        return Err(format!(
            "{y:04}-{mo:02}-{d:02} is not a calendar date (a zero or invalid date the server accepted under a lax sql_mode)"
        ));
    }
    let days = days_from_civil(i64::from(y), u32::from(mo), u32::from(d));
    Ok(
        ((days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)) * 1_000_000)
            + i64::from(us),
    )
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| format!("{what} is not valid UTF-8: {e}"))
}

fn text_of(v: MyValue, what: &str) -> Result<String, String> {
    match v {
        MyValue::Bytes(b) => utf8(b, what),
        MyValue::Int(i) => Ok(i.to_string()),
        MyValue::UInt(u) => Ok(u.to_string()),
        other => Err(format!("{what}: unexpected value {other:?}")),
    }
}

/// A `float` as the decimal it was written as: the shortest text that reads
/// back as the same 4-byte float, not the float widened bit for bit
/// (`0.1` stays `0.1`, not `0.10000000149011612`).
fn widen(f: f32) -> f64 {
    if f.is_finite() {
        f.to_string().parse().unwrap_or(f64::from(f))
    } else {
        f64::from(f)
    }
}

/// A decimal's text without a redundant `+` or leading zeros, as the
/// engine keeps it.
fn decimal_text(text: String) -> Result<String, String> {
    let t = text.trim();
    let body = t.strip_prefix('-').unwrap_or(t);
    let valid = !body.is_empty()
        && body.chars().filter(|&c| c == '.').count() <= 1
        && body.chars().all(|c| c.is_ascii_digit() || c == '.');
    if valid {
        Ok(t.to_owned())
    } else {
        Err(format!("`{t}` is not a decimal"))
    }
}

/// `v`, a value of a column of type `ty`, as an engine value, or why it
/// cannot be one.
pub fn decode(ty: &MyType, v: MyValue) -> Result<Value, String> {
    if v == MyValue::NULL {
        return Ok(Value::Null);
    }
    Ok(match ty {
        MyType::Int {
            bits: 64,
            unsigned: true,
        } => match v {
            MyValue::UInt(u) => Value::Decimal(u.to_string()),
            // Row events carry unsigned columns as their signed bits.
            MyValue::Int(i) => Value::Decimal((i as u64).to_string()),
            other => Value::Decimal(decimal_text(text_of(other, "an integer")?)?),
        },
        MyType::Int { bits, unsigned } => {
            let n: i64 = match v {
                MyValue::Int(i) => i,
                MyValue::UInt(u) => i64::try_from(u).map_err(|_| format!("{u} is out of range"))?,
                other => text_of(other, "an integer")?
                    .parse()
                    .map_err(|e| format!("not an integer: {e}"))?,
            };
            // Row events give an unsigned column its signed bit pattern.
            let n = if *unsigned && n < 0 && *bits < 64 {
                n + (1i64 << bits)
            } else {
                n
            };
            Value::Int(n)
        }
        MyType::Year => match v {
            MyValue::Int(i) => Value::Int(i),
            MyValue::UInt(u) => Value::Int(i64::try_from(u).map_err(|_| "year out of range")?),
            other => Value::Int(
                text_of(other, "a year")?
                    .parse()
                    .map_err(|e| format!("not a year: {e}"))?,
            ),
        },
        MyType::Decimal { .. } => Value::Decimal(decimal_text(text_of(v, "a decimal")?)?),
        MyType::Float => match v {
            MyValue::Float(f) => Value::Float(widen(f)),
            MyValue::Double(d) => Value::Float(d),
            other => Value::Float(
                text_of(other, "a float")?
                    .parse()
                    .map_err(|e| format!("not a number: {e}"))?,
            ),
        },
        MyType::Double => match v {
            MyValue::Double(d) => Value::Float(d),
            MyValue::Float(f) => Value::Float(f64::from(f)),
            other => Value::Float(
                text_of(other, "a double")?
                    .parse()
                    .map_err(|e| format!("not a number: {e}"))?,
            ),
        },
        // A query returns latin1 text converted (the connection's character
        // set is UTF-8); the binary log's bytes are converted before this.
        MyType::Text | MyType::Latin1 => Value::Text(text_of(v, "the text")?),
        MyType::Json => match v {
            MyValue::Bytes(b) => Value::Json(utf8(b, "the JSON text")?),
            other => return Err(format!("unexpected JSON value {other:?}")),
        },
        MyType::Bytes | MyType::FixedBytes(_) => match v {
            MyValue::Bytes(b) => Value::Bytes(b),
            other => return Err(format!("unexpected bytes value {other:?}")),
        },
        MyType::Enum(members) => match v {
            // Row events carry the member's number (1-based; 0 is the
            // empty string MariaDB stores for an invalid member).
            MyValue::Int(_) | MyValue::UInt(_) => {
                let n = match v {
                    MyValue::Int(i) => u64::try_from(i).unwrap_or(u64::MAX),
                    MyValue::UInt(u) => u,
                    _ => 0,
                };
                match n {
                    0 => Value::Text(String::new()),
                    n => Value::Text(
                        usize::try_from(n - 1)
                            .ok()
                            .and_then(|i| members.get(i))
                            .cloned()
                            .ok_or_else(|| format!("enum member {n} is not defined"))?,
                    ),
                }
            }
            other => Value::Text(text_of(other, "an enum member")?),
        },
        MyType::Set(members) => match v {
            // Row events carry the set as a bit mask of its members.
            MyValue::Int(_) | MyValue::UInt(_) => {
                let mask = match v {
                    MyValue::Int(i) => i as u64,
                    MyValue::UInt(u) => u,
                    _ => 0,
                };
                let mut chosen = Vec::new();
                for (i, m) in members.iter().enumerate() {
                    if i < 64 && mask & (1 << i) != 0 {
                        chosen.push(m.as_str());
                    }
                }
                if members.len() < 64 && mask >> members.len() != 0 {
                    return Err(format!(
                        "set bits {mask:#x} name members that are not defined"
                    ));
                }
                Value::Text(chosen.join(","))
            }
            other => Value::Text(text_of(other, "a set")?),
        },
        MyType::Bit(width) => {
            let n: u64 = match v {
                MyValue::Bytes(b) => {
                    if b.len() > 8 {
                        return Err(format!("a bit value of {} bytes", b.len()));
                    }
                    b.iter()
                        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
                }
                MyValue::Int(i) => i as u64,
                MyValue::UInt(u) => u,
                other => return Err(format!("unexpected bit value {other:?}")),
            };
            match width {
                1 => Value::Bool(n != 0),
                64 => Value::Decimal(n.to_string()),
                _ => Value::Int(i64::try_from(n).map_err(|_| format!("{n} is out of range"))?),
            }
        }
        MyType::Date => match v {
            MyValue::Date(y, m, d, ..) => {
                let micros = civil_micros(y, m, d, 0, 0, 0, 0)?;
                Value::Date(
                    i32::try_from(micros / 86_400_000_000).map_err(|_| "date out of range")?,
                )
            }
            other => return Err(format!("unexpected date value {other:?}")),
        },
        MyType::DateTime => match v {
            MyValue::Date(y, m, d, h, mi, s, us) => {
                Value::Timestamp(civil_micros(y, m, d, h, mi, s, us)?)
            }
            other => return Err(format!("unexpected datetime value {other:?}")),
        },
        MyType::Timestamp => match v {
            // The session runs in UTC, so the server sends UTC.
            MyValue::Date(y, m, d, h, mi, s, us) => {
                if (y, m, d) == (0, 0, 0) {
                    return Err(
                        "0000-00-00 00:00:00 is the server's zero timestamp, not an instant".into(),
                    );
                }
                Value::TimestampTz(civil_micros(y, m, d, h, mi, s, us)?)
            }
            // Row events: seconds since the epoch, with microseconds as
            // a fraction.
            MyValue::Int(secs) => {
                if secs == 0 {
                    return Err(
                        "0000-00-00 00:00:00 is the server's zero timestamp, not an instant".into(),
                    );
                }
                Value::TimestampTz(secs * 1_000_000)
            }
            MyValue::Bytes(text) => {
                let text = utf8(text, "a timestamp")?;
                let (secs, frac) = text.split_once('.').unwrap_or((&text, ""));
                let secs: i64 = secs
                    .parse()
                    .map_err(|e| format!("timestamp `{text}`: {e}"))?;
                if secs == 0 && frac.trim_matches('0').is_empty() {
                    return Err(
                        "0000-00-00 00:00:00 is the server's zero timestamp, not an instant".into(),
                    );
                }
                let mut micros_text = frac.to_owned();
                micros_text.truncate(6);
                while micros_text.len() < 6 {
                    micros_text.push('0');
                }
                let micros: i64 = micros_text
                    .parse()
                    .map_err(|e| format!("timestamp `{text}`: {e}"))?;
                Value::TimestampTz(secs * 1_000_000 + micros)
            }
            other => return Err(format!("unexpected timestamp value {other:?}")),
        },
        MyType::Time => match v {
            MyValue::Time(negative, days, h, m, s, us) => {
                let micros = ((i64::from(days) * 24 + i64::from(h)) * 3600
                    + i64::from(m) * 60
                    + i64::from(s))
                    * 1_000_000
                    + i64::from(us);
                Value::Interval {
                    months: 0,
                    days: 0,
                    micros: if negative { -micros } else { micros },
                }
            }
            other => return Err(format!("unexpected time value {other:?}")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_become_engine_values() {
        assert_eq!(
            decode(&MyType::Date, MyValue::Date(1970, 1, 2, 0, 0, 0, 0)),
            Ok(Value::Date(1))
        );
        assert_eq!(
            decode(&MyType::DateTime, MyValue::Date(2000, 3, 1, 1, 2, 3, 4)),
            Ok(Value::Timestamp(951_872_523_000_004))
        );
        assert!(decode(&MyType::Date, MyValue::Date(0, 0, 0, 0, 0, 0, 0)).is_err());
        assert!(decode(&MyType::Date, MyValue::Date(2021, 2, 29, 0, 0, 0, 0)).is_err());
        assert_eq!(
            decode(&MyType::Time, MyValue::Time(true, 1, 2, 0, 0, 5)),
            Ok(Value::Interval {
                months: 0,
                days: 0,
                micros: -(26 * 3600 * 1_000_000 + 5)
            })
        );
    }

    #[test]
    fn unsigned_columns_read_their_full_range() {
        let u64_max = MyType::Int {
            bits: 64,
            unsigned: true,
        };
        assert_eq!(
            decode(&u64_max, MyValue::Int(-1)),
            Ok(Value::Decimal(u64::MAX.to_string()))
        );
        let u8_max = MyType::Int {
            bits: 8,
            unsigned: true,
        };
        assert_eq!(decode(&u8_max, MyValue::Int(-1)), Ok(Value::Int(255)));
        assert_eq!(decode(&u8_max, MyValue::UInt(255)), Ok(Value::Int(255)));
    }

    #[test]
    fn a_float_keeps_the_decimal_it_was_written_as() {
        assert_eq!(
            decode(&MyType::Float, MyValue::Float(0.1)),
            Ok(Value::Float(0.1))
        );
    }

    #[test]
    fn enums_and_sets_read_by_number_as_by_name() {
        let e = MyType::Enum(vec!["a".into(), "b".into()]);
        assert_eq!(decode(&e, MyValue::Int(2)), Ok(Value::Text("b".into())));
        assert_eq!(
            decode(&e, MyValue::Bytes(b"b".to_vec())),
            Ok(Value::Text("b".into()))
        );
        assert!(decode(&e, MyValue::Int(3)).is_err());
        let s = MyType::Set(vec!["x".into(), "y".into(), "z".into()]);
        assert_eq!(
            decode(&s, MyValue::Int(0b101)),
            Ok(Value::Text("x,z".into()))
        );
    }
}
