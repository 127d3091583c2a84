//! FP64 `data` read from its JSON text with the standard library's correctly
//! rounded parser. serde_json's default float parsing is off by up to 2 ULPs
//! for about 30% of full-precision doubles (what Python's json writes);
//! its `float_roundtrip` feature would fix that for every crate in the build,
//! at twice the parse cost. FP32 and FP16 data round to the same value either
//! way, so they stay on serde_json's parse. The text was already checked to
//! be JSON (it arrives as a `RawValue`); this reads its structure into the
//! same `Sink` as the serde visitor, so nesting and count rules are shared.

use oxinfer_core::DType;

use super::data::{want, Sink, Target};

/// Reads an FP64 data array's text into `sink`. Errors are messages.
pub(super) fn scan<T: Target>(text: &str, sink: &mut Sink<'_, T>) -> Result<(), String> {
    // Markers (rewritten NaN/Infinity tokens) as their text: `{"<key>":v}`.
    let markers: Option<Vec<String>> = sink.marker.map(|key| (0..3).map(|v| format!("{{\"{}\":{v}}}", "\\u0000".repeat(key.len()))).collect());
    let b = text.as_bytes();
    let mut i = 0;
    // Elements so far of each open array, innermost last; its length is the nesting level.
    let mut open: Vec<i64> = Vec::new();
    'value: loop {
        skip_ws(b, &mut i);
        match b.get(i) {
            Some(b'[') => {
                sink.open(open.len())?;
                open.push(0);
                i += 1;
                skip_ws(b, &mut i);
                if b.get(i) != Some(&b']') {
                    continue 'value;
                }
                i += 1;
                let len = open.pop().unwrap_or_default();
                sink.close(open.len(), len)?;
            }
            Some(_) => {
                let (item, end) = scalar(b, i, markers.as_deref())?;
                match item {
                    Item::Number(v) => sink.scalar(open.len(), |t, n| t.f64(n, v))?,
                    // Always an error; `scalar` says which (a count or nesting error may come first).
                    Item::Refused(m) => sink.scalar(open.len(), |_, _| Err(m))?,
                }
                i = end;
            }
            None => return Err("data ends early".into()),
        }
        // After a value: the next element, or the end of its array.
        loop {
            skip_ws(b, &mut i);
            let Some(count) = open.last_mut() else {
                return if i == b.len() { Ok(()) } else { Err("data is not one JSON value".into()) };
            };
            *count += 1;
            match b.get(i) {
                Some(b',') => {
                    i += 1;
                    continue 'value;
                }
                Some(b']') => {
                    i += 1;
                    let len = open.pop().unwrap_or_default();
                    sink.close(open.len(), len)?;
                }
                _ => return Err("data is not a valid JSON array".into()),
            }
        }
    }
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while matches!(b.get(*i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        *i += 1;
    }
}

/// A scalar of the data: a number, or what FP64 data refuses (as a message).
enum Item {
    Number(f64),
    Refused(String),
}

/// Reads the scalar at `i` and where it ends.
fn scalar(b: &[u8], i: usize, markers: Option<&[String]>) -> Result<(Item, usize), String> {
    let refuse = |what: &str| Item::Refused(format!("{what} where {}", want(DType::Float64)));
    Ok(match b[i] {
        b'-' | b'0'..=b'9' => {
            let len = b[i..].iter().position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')).unwrap_or(b.len() - i);
            // ASCII by construction, so the slice is text.
            let token = std::str::from_utf8(&b[i..i + len]).unwrap_or_default();
            let v: f64 = token.parse().map_err(|_| format!("{token} is not a number"))?;
            // serde_json refuses such numbers in the other datatypes; so does FP64.
            let item = if v.is_finite() { Item::Number(v) } else { Item::Refused(format!("{token} is out of range for FP64")) };
            (item, i + len)
        }
        b'{' => match markers.and_then(|ms| ms.iter().position(|m| b[i..].starts_with(m.as_bytes()))) {
            Some(v) => (Item::Number([f64::NAN, f64::INFINITY, f64::NEG_INFINITY][v]), i + markers.map_or(0, |ms| ms[v].len())),
            None => (refuse("an object"), i),
        },
        b'"' => (refuse("a string"), i),
        b't' => (refuse("true"), i),
        b'f' => (refuse("false"), i),
        b'n' => (refuse("null"), i),
        _ => return Err("data is not valid JSON".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::data::from_raw;
    use oxinfer_core::{DType, InputData};

    fn read(text: &str, shape: &[i64]) -> Result<Vec<f64>, String> {
        let count = shape.iter().product::<i64>() as usize;
        match from_raw(text, DType::Float64, shape, count, None)? {
            InputData::Owned(b) => Ok(b.as_slice().chunks(8).map(|c| f64::from_ne_bytes(c.try_into().unwrap())).collect()),
            _ => panic!(),
        }
    }

    #[test]
    fn doubles_are_exact_and_follow_the_shape() {
        // serde_json's default parse gives 0.30000000000000004 one ULP off.
        let v = read("[0.30000000000000004, 2.2250738585072014e-308, 5e-324, -1.7976931348623157e308, 7, -0]", &[6]).unwrap();
        assert_eq!(v[0].to_bits(), 0.30000000000000004f64.to_bits());
        assert_eq!(v[1], f64::MIN_POSITIVE);
        assert_eq!(v[2].to_bits(), 1);
        assert_eq!(v[3], f64::MIN);
        assert_eq!(v[4], 7.0);
        assert_eq!(v[5].to_bits(), (-0.0f64).to_bits());
        assert_eq!(read(" [ [1 , 2] ,[3,4] ] ", &[2, 2]).unwrap(), [1.0, 2.0, 3.0, 4.0]);
        assert!(read("[[],[]]", &[2, 0]).unwrap().is_empty());
        let cases: &[(&str, &[i64], &str)] = &[
            ("[1e400]", &[1], "element 0: 1e400 is out of range for FP64"),
            ("[1,\"2\"]", &[2], "element 1: a string where FP64 data needs a number"),
            ("[true]", &[1], "element 0: true where FP64"),
            ("[null]", &[1], "element 0: null where FP64"),
            ("[{}]", &[1], "element 0: an object where FP64"),
            ("[[1,2],[3]]", &[2, 2], "an array at depth 1 has 1 elements"),
            ("[1,[2]]", &[2], "mixes values and arrays"),
            ("[[1]]", &[1], "nested deeper"),
            ("[1,2,3]", &[2], "more values than the 2 elements"),
            ("[1]", &[2], "data has 1 values, but shape [2] has 2 elements"),
            ("1", &[], "data must be an array"),
        ];
        for (text, shape, want) in cases {
            let e = read(text, shape).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
