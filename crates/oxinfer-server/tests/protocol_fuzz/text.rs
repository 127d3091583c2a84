//! How a client writes a string or a float in a request's JSON: Python's
//! ensure_ascii escapes, and the NaN and Infinity tokens.

/// A JSON string, ASCII-only (as Python's json.dumps writes it) when `ascii`.
pub fn json_string(s: &str, ascii: bool) -> String {
    if !ascii {
        return serde_json::to_string(s).unwrap();
    }
    // As Python's json.dumps writes it (ensure_ascii): \uXXXX, surrogate pairs.
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            ' '..='~' => out.push(c),
            _ => {
                for u in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// A float as a client writes it: shortest text, or a NaN/Infinity token.
pub fn float_text(v: f64, shortest: String, as_int: bool) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        (if v > 0.0 { "Infinity" } else { "-Infinity" }).into()
    } else if as_int && v.fract() == 0.0 && v.abs() < 1e15 && v != 0.0 {
        format!("{}", v as i64)
    } else {
        shortest
    }
}
