//! Settings the files source refuses before reading anything.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use syncline_engine::ErrorKind;
use syncline_files::{FilesSource, FilesSourceConfig};

fn with_delimiter(delimiter: char) -> FilesSourceConfig {
    serde_json::from_value(serde_json::json!({
        "path": ".",
        "tables": [{ "name": "t", "pattern": "*.csv", "delimiter": delimiter.to_string() }],
    }))
    .unwrap()
}

#[test]
fn a_delimiter_that_is_not_one_ascii_byte_is_refused() {
    // 'é' fits a byte as a code point but is two bytes in UTF-8; '→' fits
    // no byte at all (it used to become ',' silently).
    for delimiter in ['é', '→', '\u{80}'] {
        let err = FilesSource::new(
            "src",
            &with_delimiter(delimiter),
            Path::new("."),
            Path::new("."),
        )
        .err()
        .unwrap_or_else(|| panic!("delimiter {delimiter:?} was accepted"));
        assert_eq!(err.kind(), ErrorKind::Config);
        let text = err.chain();
        assert!(
            text.contains("table `t`") && text.contains("not one ASCII character"),
            "{text}"
        );
    }
    for delimiter in [',', ';', '\t', '|'] {
        assert!(
            FilesSource::new(
                "src",
                &with_delimiter(delimiter),
                Path::new("."),
                Path::new(".")
            )
            .is_ok(),
            "delimiter {delimiter:?} is refused"
        );
    }
}
