//! Keys and values as people type them and as terminals show them.
//!
//! Input ([`parse`]): `0x…` is hex (`0x` alone is the empty string);
//! `"…"` or `'…'` is a quoted string with escapes (`\n \r \t \0 \\ \" \'
//! \xHH`); anything else is taken byte for byte. Output ([`escape`]):
//! printable ASCII as is, every other byte as `\xHH` (and `\` as `\\`),
//! so that binary data never reaches a terminal raw. JSON ([`to_json`],
//! [`from_json`]): a UTF-8 value is a JSON string under its field name; any
//! other is a hex string under the field name with `_hex` appended.

use serde_json::{Map, Value};

/// The bytes `text` stands for (see the module documentation).
///
/// # Errors
/// A message naming what is wrong: odd or bad hex digits, an unknown
/// escape, an unclosed quote.
pub(crate) fn parse(text: &str) -> Result<Vec<u8>, String> {
    if let Some(hex) = text.strip_prefix("0x") {
        return from_hex(hex).map_err(|e| format!("`{text}`: {e}"));
    }
    let quote = match text.chars().next() {
        Some(q @ ('"' | '\'')) => q,
        _ => return Ok(text.as_bytes().to_vec()),
    };
    let inner = text[1..]
        .strip_suffix(quote)
        .filter(|_| text.len() >= 2)
        .ok_or_else(|| format!("`{text}`: the quote is not closed"))?;
    unescape(inner).map_err(|e| format!("`{text}`: {e}"))
}

/// `text` with its backslash escapes resolved.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let escaped = match bytes.next() {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(c @ (b'\\' | b'"' | b'\'')) => c,
            Some(b'x') => {
                let hi = bytes.next().ok_or("`\\x` needs two hex digits")?;
                let lo = bytes.next().ok_or("`\\x` needs two hex digits")?;
                (hex_digit(hi)? << 4) | hex_digit(lo)?
            }
            Some(c) => return Err(format!("unknown escape `\\{}`", c as char)),
            None => return Err("a lone `\\` at the end".to_string()),
        };
        out.push(escaped);
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Result<u8, String> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("`{}` is not a hex digit", c as char)),
    }
}

/// The bytes of the hex string `hex` (no prefix).
///
/// # Errors
/// An odd number of digits, or a character that is not one.
pub(crate) fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err("an odd number of hex digits".to_string());
    }
    digits
        .chunks_exact(2)
        .map(|pair| Ok((hex_digit(pair[0])? << 4) | hex_digit(pair[1])?))
        .collect()
}

/// `bytes` as lowercase hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// `bytes` safe for a terminal: printable ASCII as is, `\` as `\\`, every
/// other byte as `\xHH`. [`parse`] of the result in double quotes gives
/// `bytes` back.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(b as char),
            _ => {
                out.push_str("\\x");
                out.push_str(&to_hex(&[b]));
            }
        }
    }
    out
}

/// Adds `bytes` to `object` under `name` (UTF-8) or `name_hex` (any other).
pub(crate) fn to_json(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => object.insert(name.to_string(), Value::String(text.to_string())),
        Err(_) => object.insert(format!("{name}_hex"), Value::String(to_hex(bytes))),
    };
}

/// The bytes of `object`'s field `name` (a string) or `name_hex` (a hex
/// string); `None` if it has neither.
///
/// # Errors
/// The field is not a string, or its hex is bad.
pub(crate) fn from_json(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(value) = object.get(name) {
        return match value {
            Value::String(text) => Ok(Some(text.as_bytes().to_vec())),
            other => Err(format!("`{name}` must be a string, not {other}")),
        };
    }
    match object.get(&format!("{name}_hex")) {
        Some(Value::String(hex)) => from_hex(hex)
            .map(Some)
            .map_err(|e| format!("`{name}_hex`: {e}")),
        Some(other) => Err(format!("`{name}_hex` must be a string, not {other}")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_plain_quoted_and_hex() {
        assert_eq!(parse("abc").unwrap(), b"abc");
        assert_eq!(parse("0x00ff41").unwrap(), vec![0, 255, b'A']);
        assert_eq!(parse("0x").unwrap(), b"");
        assert_eq!(parse("\"a b\\n\\x00\"").unwrap(), b"a b\n\0");
        assert_eq!(parse("'it\\'s'").unwrap(), b"it's");
        assert_eq!(parse("\"\"").unwrap(), b"");
    }

    #[test]
    fn bad_input_is_an_error_naming_it() {
        for bad in [
            "0xabc",
            "0xzz",
            "\"open",
            "\"bad \\q\"",
            "\"\\x4\"",
            "\"",
            "'x\"",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn escape_keeps_terminals_clean() {
        assert_eq!(escape(b"ok"), "ok");
        assert_eq!(escape(b"\x1b[2J\n\\\""), "\\x1b[2J\\x0a\\\\\\\"");
        assert_eq!(escape(&[0xff, 0]), "\\xff\\x00");
    }

    #[test]
    fn json_uses_hex_for_bytes_that_are_not_utf8() {
        let mut object = Map::new();
        to_json(&mut object, "key", b"k");
        to_json(&mut object, "value", &[0xff]);
        assert_eq!(
            Value::Object(object.clone()).to_string(),
            r#"{"key":"k","value_hex":"ff"}"#
        );
        assert_eq!(from_json(&object, "key").unwrap(), Some(b"k".to_vec()));
        assert_eq!(from_json(&object, "value").unwrap(), Some(vec![0xff]));
        assert_eq!(from_json(&object, "other").unwrap(), None);
    }

    proptest! {
        #[test]
        fn escape_then_parse_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let quoted = format!("\"{}\"", escape(&bytes));
            prop_assert_eq!(parse(&quoted).unwrap(), bytes.clone());
            prop_assert!(escape(&bytes).bytes().all(|b| (0x20..=0x7e).contains(&b)));
            let hex = format!("0x{}", to_hex(&bytes));
            prop_assert_eq!(parse(&hex).unwrap(), bytes);
        }
    }
}
