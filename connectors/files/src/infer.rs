//! Column type inference from sample text values, and parsing text into
//! engine values with a plain reason when it does not parse.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use syncline_engine::columnar::parse_uuid;
use syncline_engine::model::{DataType, Value};

/// What a column's samples allow, narrowest first.
#[derive(Debug, Clone)]
pub struct Inference {
    boolean: bool,
    integer: bool,
    decimal_scale: Option<u8>,
    decimal_digits: u8,
    float: bool,
    date: bool,
    timestamp: bool,
    timestamptz: bool,
    seen: usize,
    nulls: usize,
}

impl Default for Inference {
    fn default() -> Self {
        Inference {
            boolean: true,
            integer: true,
            decimal_scale: Some(0),
            decimal_digits: 0,
            float: true,
            date: true,
            timestamp: true,
            timestamptz: true,
            seen: 0,
            nulls: 0,
        }
    }
}

impl Inference {
    /// Takes one sample value (empty text is NULL).
    pub fn observe(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            self.nulls += 1;
            return;
        }
        self.seen += 1;
        // `007`, `-01.5`: a code, not a number; a number type would drop
        // the zeros.
        let digits = text.trim_start_matches(['-', '+']);
        if digits.len() > 1 && digits.starts_with('0') && digits.as_bytes()[1].is_ascii_digit() {
            self.integer = false;
            self.decimal_scale = None;
            self.float = false;
        }
        if self.boolean && parse_bool(text).is_none() {
            self.boolean = false;
        }
        if self.integer && text.parse::<i64>().is_err() {
            self.integer = false;
        }
        if let Some(scale) = self.decimal_scale {
            match decimal_shape(text) {
                Some((digits, s)) => {
                    self.decimal_scale = Some(scale.max(s));
                    self.decimal_digits = self.decimal_digits.max(digits);
                }
                None => self.decimal_scale = None,
            }
        }
        if self.float && text.parse::<f64>().is_err() {
            self.float = false;
        }
        if self.date && parse_date(text).is_none() {
            self.date = false;
        }
        if self.timestamp && parse_timestamp(text).is_none() {
            self.timestamp = false;
        }
        if self.timestamptz && parse_timestamptz(text).is_none() {
            self.timestamptz = false;
        }
    }

    /// The narrowest type every sample fits; text when nothing narrower does.
    pub fn data_type(&self) -> DataType {
        if self.seen == 0 {
            return DataType::Text;
        }
        if self.boolean {
            DataType::Boolean
        } else if self.integer {
            DataType::Int64
        } else if let Some(scale) = self.decimal_scale.filter(|s| (1..=6).contains(s)) {
            // Money-like numbers keep their exact value.
            let precision = (self.decimal_digits.max(scale + 1) + 4).clamp(18, 38);
            DataType::Decimal { precision, scale }
        } else if self.float {
            DataType::Float64
        } else if self.date {
            DataType::Date
        } else if self.timestamptz {
            DataType::TimestampTz
        } else if self.timestamp {
            DataType::Timestamp
        } else {
            DataType::Text
        }
    }

    /// Whether any sample was empty.
    pub fn nullable(&self) -> bool {
        self.nulls > 0 || self.seen == 0
    }
}

/// Total digits and fractional digits of a plain decimal literal.
fn decimal_shape(text: &str) -> Option<(u8, u8)> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let total = int.len() + frac.len();
    (total <= 38).then_some((total as u8, frac.len() as u8))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "t" => Some(true),
        "false" | "f" => Some(false),
        _ => None,
    }
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

fn parse_timestamptz(text: &str) -> Option<DateTime<chrono::FixedOffset>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("epoch"),
};

/// Parses `text` as `t`. Empty text is NULL. The error is a plain reason.
pub fn parse_value(text: &str, t: &DataType) -> Result<Value, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() && *t != DataType::Text {
        return Ok(Value::Null);
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    let fail = || format!("`{}` is not a valid {t}", shorten(text));
    match t {
        DataType::Boolean => parse_bool(trimmed).map(Value::Bool).ok_or_else(fail),
        DataType::Int32 => trimmed
            .parse::<i32>()
            .map(|v| Value::Int(i64::from(v)))
            .map_err(|_| fail()),
        DataType::Int64 => trimmed.parse::<i64>().map(Value::Int).map_err(|_| fail()),
        DataType::Float64 => trimmed.parse::<f64>().map(Value::Float).map_err(|_| fail()),
        DataType::Decimal { precision, scale } => match decimal_shape(trimmed) {
            Some((digits, s)) if s <= *scale && digits - s <= precision - scale => {
                Ok(Value::Decimal(trimmed.trim_start_matches('+').to_owned()))
            }
            Some(_) => Err(format!("`{}` does not fit {t}", shorten(text))),
            None => Err(fail()),
        },
        DataType::Text => Ok(Value::Text(text.to_owned())),
        DataType::Bytes => Ok(Value::Bytes(text.as_bytes().to_vec())),
        DataType::Date => parse_date(trimmed)
            .map(|d| Value::Date((d - EPOCH).num_days() as i32))
            .ok_or_else(fail),
        DataType::Time => NaiveTime::parse_from_str(trimmed, "%H:%M:%S%.f")
            .map(|t| {
                let micros = (t - NaiveTime::MIN).num_microseconds().unwrap_or(0);
                Value::Time(micros)
            })
            .map_err(|_| fail()),
        DataType::Timestamp => parse_timestamp(trimmed)
            .map(|ts| Value::Timestamp(ts.and_utc().timestamp_micros()))
            .ok_or_else(fail),
        DataType::TimestampTz => parse_timestamptz(trimmed)
            .map(|ts| Value::TimestampTz(ts.timestamp_micros()))
            .or_else(|| {
                parse_timestamp(trimmed)
                    .map(|ts| Value::TimestampTz(ts.and_utc().timestamp_micros()))
            })
            .ok_or_else(fail),
        DataType::Uuid => parse_uuid(trimmed).map(Value::Uuid).ok_or_else(fail),
        DataType::Json => serde_json::from_str::<serde_json::Value>(trimmed)
            .map(|_| Value::Json(trimmed.to_owned()))
            .map_err(|e| format!("`{}` is not valid JSON: {e}", shorten(text))),
        DataType::Interval | DataType::List { .. } => {
            Err(format!("{t} columns cannot be read from files"))
        }
    }
}

/// At most 60 characters of `text`, for messages.
pub fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_owned()
    } else {
        let head: String = text.chars().take(57).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(values: &[&str]) -> DataType {
        let mut i = Inference::default();
        for v in values {
            i.observe(v);
        }
        i.data_type()
    }

    #[test]
    fn infers_narrowest_type() {
        assert_eq!(infer(&["1", "2", ""]), DataType::Int64);
        assert_eq!(infer(&["true", "false"]), DataType::Boolean);
        assert_eq!(
            infer(&["12.50", "3.1", "100"]),
            DataType::Decimal {
                precision: 18,
                scale: 2
            }
        );
        assert_eq!(infer(&["1e10", "2.5"]), DataType::Float64);
        assert_eq!(infer(&["2024-01-31"]), DataType::Date);
        assert_eq!(infer(&["2024-01-31 10:00:00"]), DataType::Timestamp);
        assert_eq!(infer(&["2024-01-31T10:00:00Z"]), DataType::TimestampTz);
        assert_eq!(infer(&["abc", "1"]), DataType::Text);
        // Leading zeros survive: such columns are text.
        assert_eq!(infer(&["01234", "98765"]), DataType::Text);
        assert_eq!(infer(&["1", "007"]), DataType::Text);
        assert_eq!(infer(&["-01.50"]), DataType::Text);
        assert_eq!(
            infer(&["0", "0.5", "10"]),
            DataType::Decimal {
                precision: 18,
                scale: 1
            }
        );
        assert_eq!(infer(&[""]), DataType::Text);
    }

    #[test]
    fn parses_or_explains() {
        assert_eq!(parse_value("42", &DataType::Int64), Ok(Value::Int(42)));
        assert_eq!(parse_value("", &DataType::Int64), Ok(Value::Null));
        let dec = DataType::Decimal {
            precision: 18,
            scale: 2,
        };
        assert_eq!(parse_value("9.99", &dec), Ok(Value::Decimal("9.99".into())));
        assert_eq!(
            parse_value("9.999", &dec),
            Err("`9.999` does not fit decimal(18,2)".into())
        );
        assert_eq!(
            parse_value("n/a", &DataType::Int64),
            Err("`n/a` is not a valid bigint".into())
        );
        assert_eq!(
            parse_value("1970-01-02", &DataType::Date),
            Ok(Value::Date(1))
        );
        assert_eq!(
            parse_value("1970-01-01T00:00:01Z", &DataType::TimestampTz),
            Ok(Value::TimestampTz(1_000_000))
        );
        assert!(parse_value("{bad", &DataType::Json).is_err());
        assert_eq!(
            parse_value("123e4567-e89b-12d3-a456-426614174000", &DataType::Uuid)
                .map(|v| matches!(v, Value::Uuid(_))),
            Ok(true)
        );
    }
}
