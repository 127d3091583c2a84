//! `NaN`, `Infinity` and `-Infinity` number tokens in request JSON. Python's
//! json (and so tritonclient) writes them for non-finite floats and Triton
//! parses them (rapidjson's kParseNanAndInfFlag), but serde_json refuses them.
//! Only when a parse fails on a syntax error are the tokens rewritten to a
//! marker object and the request parsed again; float data reads a marker as
//! its number, and everywhere else it stays an error.

use serde::de::{IgnoredAny, MapAccess};
use serde_json::Value;

/// Tokens as rapidjson reads them, longest first, with the value their
/// marker carries.
const TOKENS: [(&str, u8); 6] = [("-Infinity", 2), ("Infinity", 1), ("-NaN", 0), ("NaN", 0), ("-Inf", 2), ("Inf", 1)];

/// `text` with its non-finite tokens (outside strings) replaced by markers
/// `{"<key>":v}`, and the marker key; `None` when it has no such token.
///
/// The key is NULs, one more than the `\u0000` escapes in the text, so no
/// string the client sent can equal it (JSON strings hold a NUL only escaped).
pub(super) fn rewrite(text: &str) -> Option<(String, String)> {
    let key_len = text.matches("\\u0000").count() + 1;
    let mut markers = [String::new(), String::new(), String::new()];
    for (v, m) in markers.iter_mut().enumerate() {
        *m = format!("{{\"{}\":{v}}}", "\\u0000".repeat(key_len));
    }
    let b = text.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied, mut in_string) = (0, 0, false);
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'N' | b'I' | b'-' => {
                let token = TOKENS.iter().find(|(t, _)| b[i..].starts_with(t.as_bytes()) && !b.get(i + t.len()).is_some_and(u8::is_ascii_alphanumeric));
                if let Some((t, v)) = token {
                    out.push_str(&text[copied..i]);
                    out.push_str(&markers[*v as usize]);
                    i += t.len();
                    copied = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some((out, "\u{0}".repeat(key_len)))
}

/// Reads a marker object's entries (its `{` already consumed): the number it
/// stands for, or `None` when the object is not a marker (its first entry is
/// then consumed; the caller drains the rest).
pub(super) fn read_marker<'de, A: MapAccess<'de>>(map: &mut A, key: &str) -> Result<Option<f64>, A::Error> {
    match map.next_key::<String>()? {
        Some(k) if k == key => {}
        Some(_) => {
            map.next_value::<IgnoredAny>()?;
            return Ok(None);
        }
        None => return Ok(None),
    }
    let v = match map.next_value::<u8>()? {
        0 => f64::NAN,
        1 => f64::INFINITY,
        _ => f64::NEG_INFINITY,
    };
    Ok(if map.next_key::<IgnoredAny>()?.is_none() { Some(v) } else { None })
}

/// Whether a parameter value holds a marker (a non-finite number, which
/// parameters do not take).
pub(super) fn holds_marker(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key) || m.values().any(|v| holds_marker(v, key)),
        Value::Array(a) => a.iter().any(|v| holds_marker(v, key)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_outside_strings_become_markers() {
        let (t, key) = rewrite(r#"[NaN, -Infinity,Infinity,"NaN",-1]"#).unwrap();
        assert_eq!(t, r#"[{"\u0000":0}, {"\u0000":2},{"\u0000":1},"NaN",-1]"#);
        assert_eq!(key, "\0");
        assert_eq!(rewrite(r#"{"a\"NaN":Inf}"#).unwrap().0, r#"{"a\"NaN":{"\u0000":1}}"#);
        // A text whose strings hold NULs gets a longer key than any of them.
        let (t, key) = rewrite(r#"["\u0000\u0000", NaN]"#).unwrap();
        assert_eq!(t, r#"["\u0000\u0000", {"\u0000\u0000\u0000":0}]"#);
        assert_eq!(key, "\0\0\0");
        // Nothing to rewrite, or a token that is not one.
        assert!(rewrite(r#"[1, "NaN"]"#).is_none());
        assert!(rewrite("[NaNa]").is_none());
        // Cut-short text never panics.
        assert!(rewrite("\"\\").is_none());
        assert!(rewrite("-").is_none());
    }
}
