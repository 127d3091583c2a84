//! Class probabilities from a ZipMap output (scikit-learn models converted
//! by skl2onnx: a sequence of maps, one per row, class → probability), read
//! by a pipeline as it reads a [rows, k] scores tensor. The classes' order is
//! the spec's `labels` where given (matched by name, or by index for integer
//! classes), else the order of the first row's map (ZipMap keeps the
//! classifier's class order).

use serde_json::Value;

use crate::error::{Error, Result};

/// The scores of a ZipMap output's JSON (see `onnx/convert.rs`), row by row,
/// and the class count.
pub fn scores(name: &str, json: &str, labels: Option<&[String]>) -> Result<(Vec<f64>, usize)> {
    let bad = |why: String| Error::Backend(format!("output '{name}': {why}"));
    let v: Value = serde_json::from_str(json).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let items = match v.get("kind").and_then(Value::as_str) {
        Some("sequence") => v.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
        _ => return Err(Error::Unsupported(format!("output '{name}' is not a sequence of maps (a ZipMap): a pipeline reads scores from a tensor or a ZipMap"))),
    };
    let mut order: Option<Vec<String>> = labels.map(<[String]>::to_vec);
    let mut out = Vec::new();
    for (row, item) in items.iter().enumerate() {
        if item.get("kind").and_then(Value::as_str) != Some("map") {
            return Err(Error::Unsupported(format!("output '{name}' is a sequence of something other than maps")));
        }
        let keys: Vec<String> = item.get("keys").and_then(Value::as_array).map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect()).unwrap_or_default();
        let values: Vec<f64> = item.get("values").and_then(Value::as_array).map(|a| a.iter().map(|x| x.as_f64().or_else(|| x.as_str().and_then(|s| s.parse().ok())).unwrap_or(f64::NAN)).collect()).unwrap_or_default();
        let integer = item.get("keyType").and_then(Value::as_str) == Some("int64");
        let classes = order.get_or_insert_with(|| keys.clone());
        for (j, class) in classes.iter().enumerate() {
            // Integer classes may be named by labels: label j stands for class j.
            let at = keys.iter().position(|k| k == class).or_else(|| if integer && labels.is_some() { keys.iter().position(|k| k.parse::<usize>().ok() == Some(j)) } else { None });
            match at {
                Some(i) => out.push(values.get(i).copied().unwrap_or(f64::NAN)),
                None => return Err(bad(format!("row {row} has no probability for class '{class}' (its classes: {})", keys.join(", ")))),
            }
        }
    }
    Ok((out, order.map_or(labels.map_or(1, <[String]>::len), |o| o.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_string_and_integer_classes_in_label_order() {
        let json = r#"{"kind":"sequence","items":[{"kind":"map","keyType":"string","valueType":"float32","keys":["a","b"],"values":[0.25,0.75]},{"kind":"map","keyType":"string","valueType":"float32","keys":["a","b"],"values":[1,0]}]}"#;
        assert_eq!(scores("p", json, None).unwrap(), (vec![0.25, 0.75, 1.0, 0.0], 2));
        let labels = ["b".to_string(), "a".to_string()];
        assert_eq!(scores("p", json, Some(&labels)).unwrap(), (vec![0.75, 0.25, 0.0, 1.0], 2));
        let ints = r#"{"kind":"sequence","items":[{"kind":"map","keyType":"int64","valueType":"float32","keys":["0","1","2"],"values":[0.5,0.3,0.2]}]}"#;
        let named = ["x".to_string(), "y".to_string(), "z".to_string()];
        assert_eq!(scores("p", ints, Some(&named)).unwrap(), (vec![0.5, 0.3, 0.2], 3));
        assert!(scores("p", json, Some(&["c".to_string()])).unwrap_err().to_string().contains("no probability for class 'c'"));
        assert_eq!(scores("p", r#"{"kind":"map","keys":[],"values":[]}"#, None).unwrap_err().code(), "ERR_UNSUPPORTED");
    }
}
