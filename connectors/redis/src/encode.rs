//! How values are written into Redis: JSON strings and stream entries in
//! the engine's exact JSON ([`syncline_engine::encode`]); a hash field per
//! column, holding the value's text (bytes as they are); NULL is a field
//! left out. Every value has a form Redis keeps.

use syncline_engine::model::Value;

pub use syncline_engine::encode::{conformed, json, quoted, text};

/// The value as a hash field's bytes (`None`: NULL, the field left out).
pub fn field(value: &Value) -> Result<Option<Vec<u8>>, String> {
    Ok(match value {
        Value::Null => None,
        Value::Bytes(b) => Some(b.clone()),
        Value::Text(t) | Value::Json(t) => Some(t.clone().into_bytes()),
        Value::List(_) => Some(json(value)?.into_bytes()),
        Value::Unchanged => return Err("the value was left out by the source (unchanged)".into()),
        other => Some(text(other)?.into_bytes()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hash_fields_keep_bytes_and_leave_null_out() {
        assert_eq!(field(&Value::Null).unwrap(), None);
        assert_eq!(
            field(&Value::Bytes(vec![0, 255])).unwrap(),
            Some(vec![0, 255])
        );
        assert_eq!(
            field(&Value::List(vec![Value::Int(1), Value::Null])).unwrap(),
            Some(b"[1,null]".to_vec())
        );
    }
}
