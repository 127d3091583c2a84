//! Class probabilities from a ZipMap output (scikit-learn models converted
//! by skl2onnx: a sequence of maps, one per row, class → probability), read
//! by a pipeline as it reads a [rows, k] scores tensor. The spec's `labels`
//! are required (compile.rs) and name the scores' columns: matched to the
//! classes by name when every label is one of them (string classes, in any
//! order), otherwise label j is the map's j-th class, in the order the map
//! has them (ZipMap keeps the classifier's), as column j of a tensor is.

use serde_json::Value;

use crate::error::{Error, Result};

/// The scores of a ZipMap output's JSON (see `onnx/convert.rs`), row by
/// row, one column per label.
pub fn scores(name: &str, json: &str, labels: &[String]) -> Result<Vec<f64>> {
    let bad = |why: String| Error::Backend(format!("output '{name}': {why}"));
    let v: Value = serde_json::from_str(json).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let items = match v.get("kind").and_then(Value::as_str) {
        Some("sequence") => v.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
        _ => return Err(Error::Unsupported(format!("output '{name}' is not a sequence of maps (a ZipMap): a pipeline reads scores from a tensor or a ZipMap"))),
    };
    let mut out = Vec::with_capacity(items.len() * labels.len());
    // Per label, the index of its class in each map (decided on the first row).
    let mut columns: Option<Vec<usize>> = None;
    for (row, item) in items.iter().enumerate() {
        if item.get("kind").and_then(Value::as_str) != Some("map") {
            return Err(Error::Unsupported(format!("output '{name}' is a sequence of something other than maps")));
        }
        let keys: Vec<String> = item.get("keys").and_then(Value::as_array).map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect()).unwrap_or_default();
        // Numbers, or strings: int64 values, and "NaN" / "Infinity" / "-Infinity" (Rust's parse reads all three).
        let values: Vec<f64> = item.get("values").and_then(Value::as_array).map(|a| a.iter().map(|x| x.as_f64().or_else(|| x.as_str().and_then(|s| s.parse().ok())).unwrap_or(f64::NAN)).collect()).unwrap_or_default();
        if keys.len() != labels.len() {
            return Err(Error::invalid_spec("output", format!("output '{name}' has {} classes ({}), the spec {} labels", keys.len(), keys.join(", "), labels.len())).at("labels"));
        }
        let cols = columns.get_or_insert_with(|| match labels.iter().map(|l| keys.iter().position(|k| k == l)).collect::<Option<Vec<_>>>() {
            Some(by_name) => by_name,
            None => (0..labels.len()).collect(),
        });
        for &c in cols.iter() {
            match (keys.get(c), values.get(c)) {
                (Some(_), Some(&p)) => out.push(p),
                _ => return Err(bad(format!("row {row}'s map has fewer classes than the first row's"))),
            }
        }
        // Every row must list the same classes as the first.
        if row > 0 && items[0].get("keys") != item.get("keys") {
            return Err(bad(format!("row {row}'s classes ({}) differ from row 0's", keys.join(", "))));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_match_classes_by_name_else_by_position() {
        let json = r#"{"kind":"sequence","items":[{"kind":"map","keyType":"string","valueType":"float32","keys":["a","b"],"values":[0.25,0.75]},{"kind":"map","keyType":"string","valueType":"float32","keys":["a","b"],"values":[1,"NaN"]}]}"#;
        let got = scores("p", json, &labels(&["b", "a"])).unwrap();
        assert_eq!((got[0], got[1], got[3]), (0.75, 0.25, 1.0));
        assert!(got[2].is_nan(), "\"NaN\" reads as NaN");
        // Integer classes 0, 1, 2 named "1", "2", "3": by position, not by the class "1".
        let ints = r#"{"kind":"sequence","items":[{"kind":"map","keyType":"int64","valueType":"float32","keys":["0","1","2"],"values":[0.5,0.3,0.2]}]}"#;
        assert_eq!(scores("p", ints, &labels(&["1", "2", "3"])).unwrap(), vec![0.5, 0.3, 0.2]);
        assert_eq!(scores("p", ints, &labels(&["2", "1", "0"])).unwrap(), vec![0.2, 0.3, 0.5]);
        let e = scores("p", ints, &labels(&["x", "y"])).unwrap_err();
        assert_eq!(e.code(), "ERR_INVALID_SPEC");
        assert!(e.to_string().contains("has 3 classes (0, 1, 2), the spec 2 labels"), "{e}");
        assert_eq!(scores("p", r#"{"kind":"map","keys":[],"values":[]}"#, &labels(&["a"])).unwrap_err().code(), "ERR_UNSUPPORTED");
    }
}
