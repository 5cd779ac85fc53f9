//! Postgres types → engine types, and decoding of Postgres's binary wire
//! format (used both by `COPY ... (FORMAT binary)` and by pgoutput in binary
//! mode, so snapshot and stream share one decoder).
//!
//! | Postgres                              | engine            |
//! |---------------------------------------|-------------------|
//! | bool                                  | boolean           |
//! | smallint, integer                     | int               |
//! | bigint, oid                           | bigint            |
//! | real, double precision                | double            |
//! | numeric(p,s), p ≤ 38                  | decimal(p,s)      |
//! | numeric without precision, p > 38     | text (exact)      |
//! | text, varchar, char, name, enums      | text              |
//! | bytea                                 | bytes             |
//! | date / time / timestamp / timestamptz | same, µs kept     |
//! | timetz                                | text              |
//! | interval                              | interval          |
//! | uuid                                  | uuid              |
//! | json, jsonb                           | json              |
//! | one-dimensional arrays of the above   | list              |
//!
//! Domains are read as their base type. Other types are refused by
//! `syncline check` with the column named.

use syncline_engine::columnar::Cell;
use syncline_engine::model::{DataType, Value};

/// Microseconds between 1970-01-01 and Postgres's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// How to decode one column's binary values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoder {
    /// bool
    Bool,
    /// int2
    Int2,
    /// int4
    Int4,
    /// int8
    Int8,
    /// oid
    Oid,
    /// float4
    Float4,
    /// float8
    Float8,
    /// numeric, as decimal text
    Numeric {
        /// Decimal(p,s) or, when `None`, exact text.
        fits: Option<(u8, u8)>,
    },
    /// Any text-like type (text, varchar, bpchar, name, enum labels).
    Text,
    /// bytea
    Bytea,
    /// date
    Date,
    /// time
    Time,
    /// timetz
    TimeTz,
    /// timestamp
    Timestamp,
    /// timestamptz
    TimestampTz,
    /// interval
    Interval,
    /// uuid
    Uuid,
    /// json
    Json,
    /// jsonb
    Jsonb,
    /// array of the element decoder
    Array(Box<Decoder>),
}

impl Decoder {
    /// The decoder of a built-in scalar type, by OID.
    pub fn builtin(oid: u32, typmod: i32) -> Option<Decoder> {
        Some(match oid {
            16 => Decoder::Bool,
            21 => Decoder::Int2,
            23 => Decoder::Int4,
            20 => Decoder::Int8,
            26 => Decoder::Oid,
            700 => Decoder::Float4,
            701 => Decoder::Float8,
            1700 => Decoder::Numeric {
                fits: numeric_typmod(typmod).filter(|(p, _)| *p <= 38),
            },
            25 | 1043 | 1042 | 19 | 18 => Decoder::Text,
            17 => Decoder::Bytea,
            1082 => Decoder::Date,
            1083 => Decoder::Time,
            1266 => Decoder::TimeTz,
            1114 => Decoder::Timestamp,
            1184 => Decoder::TimestampTz,
            1186 => Decoder::Interval,
            2950 => Decoder::Uuid,
            114 => Decoder::Json,
            3802 => Decoder::Jsonb,
            _ => return None,
        })
    }

    /// The engine type values decode to.
    pub fn data_type(&self) -> DataType {
        match self {
            Decoder::Bool => DataType::Boolean,
            Decoder::Int2 | Decoder::Int4 => DataType::Int32,
            Decoder::Int8 | Decoder::Oid => DataType::Int64,
            Decoder::Float4 | Decoder::Float8 => DataType::Float64,
            Decoder::Numeric { fits: Some((p, s)) } => DataType::Decimal {
                precision: *p,
                scale: *s,
            },
            Decoder::Numeric { fits: None } | Decoder::Text | Decoder::TimeTz => DataType::Text,
            Decoder::Bytea => DataType::Bytes,
            Decoder::Date => DataType::Date,
            Decoder::Time => DataType::Time,
            Decoder::Timestamp => DataType::Timestamp,
            Decoder::TimestampTz => DataType::TimestampTz,
            Decoder::Interval => DataType::Interval,
            Decoder::Uuid => DataType::Uuid,
            Decoder::Json | Decoder::Jsonb => DataType::Json,
            Decoder::Array(item) => DataType::List {
                item: Box::new(item.data_type()),
            },
        }
    }

    /// Decodes one non-NULL binary value.
    pub fn decode(&self, b: &[u8]) -> Result<Value, String> {
        let need = |n: usize| {
            if b.len() == n {
                Ok(())
            } else {
                Err(format!("expected {n} bytes, got {}", b.len()))
            }
        };
        Ok(match self {
            Decoder::Bool => {
                need(1)?;
                Value::Bool(b[0] != 0)
            }
            Decoder::Int2 => {
                need(2)?;
                Value::Int(i64::from(i16::from_be_bytes([b[0], b[1]])))
            }
            Decoder::Int4 => {
                need(4)?;
                Value::Int(i64::from(be_i32(b)))
            }
            Decoder::Oid => {
                need(4)?;
                Value::Int(i64::from(be_i32(b) as u32))
            }
            Decoder::Int8 => {
                need(8)?;
                Value::Int(be_i64(b))
            }
            Decoder::Float4 => {
                need(4)?;
                // Widened through its shortest decimal form (as Postgres
                // prints it), so a stored 3.14 arrives as 3.14, not as
                // 3.140000104904175; it still narrows back to the same real.
                let f = f32::from_bits(be_i32(b) as u32);
                Value::Float(f.to_string().parse().unwrap_or(f64::from(f)))
            }
            Decoder::Float8 => {
                need(8)?;
                Value::Float(f64::from_bits(be_i64(b) as u64))
            }
            Decoder::Numeric { fits } => match numeric_text(b)? {
                NumericText::Finite(text) if fits.is_some() => Value::Decimal(text),
                NumericText::Finite(text) => Value::Text(text),
                // NaN and the infinities as the special decimals (targets
                // without them dead-letter the row), never NULL.
                NumericText::Special(text) if fits.is_none() => Value::Text(text),
                NumericText::Special(text) => Value::Decimal(text),
            },
            Decoder::Text => Value::Text(utf8(b)?),
            Decoder::Json => Value::Json(utf8(b)?),
            Decoder::Jsonb => {
                if b.first() != Some(&1) {
                    return Err("unknown jsonb version".into());
                }
                Value::Json(utf8(&b[1..])?)
            }
            Decoder::Bytea => Value::Bytes(b.to_vec()),
            Decoder::Date => {
                need(4)?;
                match be_i32(b) {
                    // `infinity` and `-infinity`, as the engine has them.
                    d @ (i32::MAX | i32::MIN) => Value::Date(d),
                    d => Value::Date(d + PG_EPOCH_DAYS),
                }
            }
            Decoder::Time => {
                need(8)?;
                Value::Time(be_i64(b))
            }
            Decoder::TimeTz => {
                need(12)?;
                let micros = be_i64(b);
                // Seconds west of UTC.
                let west = be_i32(&b[8..]);
                let (h, m, s, us) = (
                    micros / 3_600_000_000,
                    micros / 60_000_000 % 60,
                    micros / 1_000_000 % 60,
                    micros % 1_000_000,
                );
                let east = -west;
                let sign = if east < 0 { '-' } else { '+' };
                let east = east.abs();
                Value::Text(format!(
                    "{h:02}:{m:02}:{s:02}.{us:06}{sign}{:02}:{:02}",
                    east / 3600,
                    east / 60 % 60
                ))
            }
            Decoder::Timestamp | Decoder::TimestampTz => {
                need(8)?;
                let t = match be_i64(b) {
                    i64::MAX => i64::MAX,
                    i64::MIN => i64::MIN,
                    t => t.saturating_add(PG_EPOCH_MICROS),
                };
                if *self == Decoder::Timestamp {
                    Value::Timestamp(t)
                } else {
                    Value::TimestampTz(t)
                }
            }
            Decoder::Interval => {
                need(16)?;
                Value::Interval {
                    micros: be_i64(b),
                    days: be_i32(&b[8..]),
                    months: be_i32(&b[12..]),
                }
            }
            Decoder::Uuid => {
                need(16)?;
                let mut u = [0u8; 16];
                u.copy_from_slice(b);
                Value::Uuid(u)
            }
            Decoder::Array(item) => Value::List(decode_array(item, b)?),
        })
    }
}

impl Decoder {
    /// The value of `b` as a column-block cell, straight from the wire
    /// where that needs no allocation (integers, booleans, doubles, text,
    /// JSON, bytes, dates and times, UUIDs and fixed-scale numerics), with
    /// the meaning [`Decoder::decode`] gives it. `None`: decode it with
    /// [`Decoder::decode`] and take the cell of the value.
    pub fn cell<'a>(&self, b: &'a [u8]) -> Option<Result<Cell<'a>, String>> {
        let sized = |n: usize, cell: fn(&'a [u8]) -> Cell<'a>| {
            Some(if b.len() == n {
                Ok(cell(b))
            } else {
                Err(format!("expected {n} bytes, got {}", b.len()))
            })
        };
        let utf8 = |b: &'a [u8], cell: fn(&'a str) -> Cell<'a>| {
            Some(
                std::str::from_utf8(b)
                    .map(cell)
                    .map_err(|_| "not valid UTF-8".to_owned()),
            )
        };
        let text = |b| utf8(b, Cell::Str);
        let json = |b| utf8(b, Cell::Json);
        match self {
            Decoder::Bool => sized(1, |b| Cell::Bool(b[0] != 0)),
            Decoder::Int2 => sized(2, |b| {
                Cell::Int(i64::from(i16::from_be_bytes([b[0], b[1]])))
            }),
            Decoder::Int4 => sized(4, |b| Cell::Int(i64::from(be_i32(b)))),
            Decoder::Int8 => sized(8, |b| Cell::Int(be_i64(b))),
            Decoder::Float8 => sized(8, |b| Cell::Float(f64::from_bits(be_i64(b) as u64))),
            Decoder::Text => text(b),
            // Postgres checked the document when it was written.
            Decoder::Json => json(b),
            Decoder::Jsonb if b.first() == Some(&1) => json(&b[1..]),
            Decoder::Bytea => Some(Ok(Cell::Bytes(b))),
            Decoder::Date => sized(4, |b| match be_i32(b) {
                d @ (i32::MAX | i32::MIN) => Cell::Days(d),
                d => Cell::Days(d + PG_EPOCH_DAYS),
            }),
            Decoder::Time => sized(8, |b| Cell::Micros(be_i64(b))),
            Decoder::Timestamp | Decoder::TimestampTz => sized(8, |b| {
                Cell::Micros(match be_i64(b) {
                    t @ (i64::MAX | i64::MIN) => t,
                    t => t.saturating_add(PG_EPOCH_MICROS),
                })
            }),
            Decoder::Uuid => sized(16, |b| {
                let mut u = [0u8; 16];
                u.copy_from_slice(b);
                Cell::Uuid(u)
            }),
            Decoder::Numeric {
                fits: Some((_, scale)),
            } => numeric_scaled(b, *scale).map(|v| Ok(Cell::Decimal(v))),
            _ => None,
        }
    }
}

/// A finite binary numeric scaled to `scale` fraction digits (`12.5` at
/// scale 2 → `1250`), if that is exact and fits an `i128`.
fn numeric_scaled(b: &[u8], scale: u8) -> Option<i128> {
    if b.len() < 8 {
        return None;
    }
    let ndigits = i16::from_be_bytes([b[0], b[1]]).max(0) as usize;
    let weight = i32::from(i16::from_be_bytes([b[2], b[3]]));
    let sign = u16::from_be_bytes([b[4], b[5]]);
    if !matches!(sign, 0x0000 | 0x4000) || b.len() != 8 + 2 * ndigits {
        return None;
    }
    let mut value: i128 = 0;
    for i in 0..ndigits {
        let digit = i128::from(u16::from_be_bytes([b[8 + 2 * i], b[9 + 2 * i]]));
        // This base-10000 digit is worth 10^exp units of the scale.
        let exp = 4 * (weight - i as i32) + i32::from(scale);
        let part = if exp >= 0 {
            digit.checked_mul(10i128.checked_pow(exp as u32)?)?
        } else {
            let div = 10i128.checked_pow((-exp) as u32).unwrap_or(i128::MAX);
            if digit % div != 0 {
                return None;
            }
            digit / div
        };
        value = value.checked_add(part)?;
    }
    Some(if sign == 0x4000 { -value } else { value })
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "not valid UTF-8".to_owned())
}

/// `numeric(p,s)` from a type modifier; `None` for unconstrained numeric.
pub fn numeric_typmod(typmod: i32) -> Option<(u8, u8)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = t & 0xffff;
    (precision <= 1000 && scale <= precision).then(|| (precision.min(255) as u8, scale as u8))
}

enum NumericText {
    Finite(String),
    Special(String),
}

/// Postgres binary numeric → exact decimal text.
fn numeric_text(b: &[u8]) -> Result<NumericText, String> {
    if b.len() < 8 {
        return Err("numeric too short".into());
    }
    let ndigits = i16::from_be_bytes([b[0], b[1]]).max(0) as usize;
    let weight = i16::from_be_bytes([b[2], b[3]]) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = i16::from_be_bytes([b[6], b[7]]).max(0) as usize;
    match sign {
        0xC000 => return Ok(NumericText::Special("NaN".into())),
        0xD000 => return Ok(NumericText::Special("Infinity".into())),
        0xF000 => return Ok(NumericText::Special("-Infinity".into())),
        _ => {}
    }
    if b.len() != 8 + 2 * ndigits {
        return Err("numeric length does not match its digit count".into());
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| u16::from_be_bytes([b[8 + 2 * i], b[9 + 2 * i]]))
        .collect();
    let digit = |i: i32| -> u16 {
        if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit(i).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    if out == "-0" || (out.starts_with("-0") && out[1..].trim_start_matches(['0', '.']).is_empty())
    {
        out.remove(0);
    }
    Ok(NumericText::Finite(out))
}

fn decode_array(item: &Decoder, b: &[u8]) -> Result<Vec<Value>, String> {
    if b.len() < 12 {
        return Err("array header too short".into());
    }
    let ndim = be_i32(b);
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if ndim < 0 || b.len() < 12 + 8 * ndim as usize {
        return Err("bad array header".into());
    }
    let mut count: usize = 1;
    for d in 0..ndim as usize {
        count = count.saturating_mul(be_i32(&b[12 + 8 * d..]).max(0) as usize);
    }
    // Multi-dimensional arrays are read in row-major order as one list.
    let mut pos = 12 + 8 * ndim as usize;
    let mut out = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        if pos + 4 > b.len() {
            return Err("array truncated".into());
        }
        let len = be_i32(&b[pos..]);
        pos += 4;
        if len < 0 {
            out.push(Value::Null);
            continue;
        }
        let end = pos + len as usize;
        if end > b.len() {
            return Err("array element truncated".into());
        }
        out.push(item.decode(&b[pos..end])?);
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every decoder, arrays of several included.
    fn decoders() -> Vec<Decoder> {
        let scalars = vec![
            Decoder::Bool,
            Decoder::Int2,
            Decoder::Int4,
            Decoder::Int8,
            Decoder::Oid,
            Decoder::Float4,
            Decoder::Float8,
            Decoder::Numeric {
                fits: Some((10, 2)),
            },
            Decoder::Numeric {
                fits: Some((38, 10)),
            },
            Decoder::Numeric { fits: None },
            Decoder::Text,
            Decoder::Bytea,
            Decoder::Date,
            Decoder::Time,
            Decoder::TimeTz,
            Decoder::Timestamp,
            Decoder::TimestampTz,
            Decoder::Interval,
            Decoder::Uuid,
            Decoder::Json,
            Decoder::Jsonb,
        ];
        let arrays: Vec<Decoder> = scalars
            .iter()
            .map(|d| Decoder::Array(Box::new(d.clone())))
            .collect();
        scalars.into_iter().chain(arrays).collect()
    }

    proptest! {
        /// Whatever bytes the server sends, decoding answers a value or an
        /// error, both ways (whole value and column-block cell), never a
        /// panic; and a cell, where there is one, means what the value does.
        #[test]
        fn decoding_any_bytes_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..96),
            which in 0usize..42,
        ) {
            let all = decoders();
            let d = &all[which % all.len()];
            let value = d.decode(&bytes);
            if let Some(Ok(_)) = d.cell(&bytes) {
                prop_assert!(value.is_ok(), "{d:?}: a cell but no value for {bytes:?}");
            }
        }

        /// Any finite numeric decodes to plain decimal text with exactly its
        /// display scale of fraction digits.
        #[test]
        fn numeric_digits_round_trip(digits in prop::collection::vec(0u16..10_000, 0..6), weight in -3i16..6, negative: bool, dscale in 0i16..12) {
            let sign = if negative { 0x4000 } else { 0 };
            let b = numeric(digits.len() as i16, weight, sign, dscale, &digits);
            let text = match numeric_text(&b) {
                Ok(NumericText::Finite(t)) => t,
                Ok(NumericText::Special(t)) => return Err(TestCaseError::fail(t)),
                Err(e) => return Err(TestCaseError::fail(e)),
            };
            let frac = text.split_once('.').map_or("", |(_, f)| f);
            prop_assert_eq!(frac.len(), dscale as usize, "{}", text);
            prop_assert!(
                syncline_engine::model::DecimalParts::parse(&text).is_some(),
                "not decimal text: {}", text
            );
        }
    }

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(ndigits.to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(dscale.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_scale_straight_from_the_wire() {
        // 12345.67 = [1, 2345, 6700] with weight 1
        let b = numeric(3, 1, 0, 2, &[1, 2345, 6700]);
        assert_eq!(numeric_scaled(&b, 2), Some(1_234_567));
        assert_eq!(numeric_scaled(&b, 4), Some(123_456_700));
        // 0.5 at scale 0 is not exact.
        assert_eq!(numeric_scaled(&numeric(1, -1, 0, 1, &[5000]), 0), None);
        assert_eq!(
            numeric_scaled(&numeric(1, -1, 0x4000, 1, &[5000]), 2),
            Some(-50)
        );
        assert_eq!(numeric_scaled(&numeric(0, 0, 0, 2, &[]), 2), Some(0));
        // 10^40 does not fit.
        assert_eq!(numeric_scaled(&numeric(1, 10, 0, 0, &[1]), 0), None);
        assert_eq!(numeric_scaled(&numeric(0, 0, 0xC000, 0, &[]), 2), None);
        let d = Decoder::Numeric {
            fits: Some((12, 2)),
        };
        assert_eq!(
            d.cell(&b).expect("straight from the wire"),
            Ok(Cell::Decimal(1_234_567))
        );
        assert_eq!(
            Decoder::Jsonb
                .cell(b"\x01{}")
                .expect("straight from the wire"),
            Ok(Cell::Json("{}"))
        );
        assert!(
            Decoder::Text
                .cell(&[0xff])
                .expect("straight from the wire")
                .is_err()
        );
        assert_eq!(
            Decoder::Date
                .cell(&[0, 0, 0, 1])
                .expect("straight from the wire"),
            Ok(Cell::Days(10_958))
        );
        assert!(Decoder::Interval.cell(&[0; 16]).is_none());
    }

    fn text(b: &[u8]) -> String {
        match numeric_text(b) {
            Ok(NumericText::Finite(t)) | Ok(NumericText::Special(t)) => t,
            Err(e) => e,
        }
    }

    #[test]
    fn numerics_decode_exactly() {
        assert_eq!(text(&numeric(2, 0, 0, 2, &[12, 5000])), "12.50");
        assert_eq!(text(&numeric(1, -1, 0, 4, &[1])), "0.0001");
        assert_eq!(text(&numeric(1, -2, 0, 5, &[1000])), "0.00001");
        assert_eq!(text(&numeric(1, 1, 0, 0, &[10])), "100000");
        assert_eq!(text(&numeric(1, 0, 0x4000, 1, &[7])), "-7.0");
        assert_eq!(text(&numeric(0, 0, 0, 2, &[])), "0.00");
        assert_eq!(text(&numeric(0, 0, 0xC000, 0, &[])), "NaN");
        assert_eq!(
            text(&numeric(5, 4, 0, 3, &[1, 2345, 6789, 123, 4567])),
            "12345678901234567.000"
        );
        assert_eq!(
            text(&numeric(5, 4, 0, 3, &[1, 2345, 6789, 123, 4567])[..16]),
            "numeric length does not match its digit count"
        );
    }

    #[test]
    fn typmods() {
        assert_eq!(numeric_typmod((12 << 16 | 2) + 4), Some((12, 2)));
        assert_eq!(numeric_typmod(-1), None);
    }

    #[test]
    fn timestamps_shift_to_unix_epoch() {
        let zero = 0i64.to_be_bytes();
        assert_eq!(
            Decoder::TimestampTz.decode(&zero),
            Ok(Value::TimestampTz(PG_EPOCH_MICROS))
        );
        assert_eq!(
            Decoder::Date.decode(&0i32.to_be_bytes()),
            Ok(Value::Date(10_957))
        );
    }
}
