//! Where a spec error is in the user's file: the line and column of the value
//! at a JSON path (`preprocess[2].fields[1]`) in the spec's own text, so that
//! errors point at the file the user wrote, not at re-serialised JSON.

use jsonc_parser::ast::Value;
use jsonc_parser::common::Ranged;

use crate::error::{Error, SpecSource};

/// One step of a JSON path.
#[derive(Debug, PartialEq)]
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// Splits `a.b[2].c` into steps; None for a path this module did not write.
fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            out.push(Step::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// The 1-based line and column of byte `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The line and column of the value at `path` in `text`, or of the deepest
/// value on the way there that exists (a missing key points at its object).
pub fn find(text: &str, path: &str) -> Option<(usize, usize)> {
    let steps = steps(path)?;
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default()).ok()?;
    let mut node: &Value = parsed.value.as_ref()?;
    for step in &steps {
        let next = match (step, node) {
            (Step::Key(k), Value::Object(o)) => o.properties.iter().find(|p| p.name.as_str() == *k).map(|p| &p.value),
            (Step::Index(i), Value::Array(a)) => a.elements.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    Some(line_column(text, node.start()))
}

/// `e` with the spec file it came from and, for a spec error, the line of its
/// value; a message that had no location gains "(file:line:column)".
pub fn in_file(e: Error, text: &str, file: &str) -> Error {
    match e {
        Error::InvalidSpec { message, stage, at, origin } if origin.as_ref().is_none_or(|o| o.path.is_empty()) => {
            // A syntax error came with its own line; others are found by their JSON path.
            let found = origin.and_then(|o| Some((o.line?, o.column.unwrap_or(1)))).or_else(|| at.as_deref().and_then(|p| find(text, p)));
            let message = match found {
                Some((l, c)) => format!("{message} ({file}:{l}:{c})"),
                None => format!("{message} ({file})"),
            };
            let origin = SpecSource { path: file.to_string(), line: found.map(|f| f.0), column: found.map(|f| f.1) };
            Error::InvalidSpec { message, stage, at, origin: Some(origin) }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "{\n  \"version\": 1,\n  \"preprocess\": [\n    { \"op\": \"a\" },\n    {\n      \"op\": \"b\",\n      \"fields\": [\"x\", \"y\"]\n    }\n  ]\n}\n";

    #[test]
    fn splits_paths() {
        assert_eq!(steps("preprocess[1].fields[0]").unwrap(), vec![Step::Key("preprocess"), Step::Index(1), Step::Key("fields"), Step::Index(0)]);
        assert_eq!(steps("a[0][1]").unwrap(), vec![Step::Key("a"), Step::Index(0), Step::Index(1)]);
        assert!(steps("a[x]").is_none());
    }

    #[test]
    fn finds_values_and_falls_back_to_the_deepest() {
        assert_eq!(find(TEXT, "version"), Some((2, 14)));
        assert_eq!(find(TEXT, "preprocess[1].fields[1]"), Some((7, 23)));
        assert_eq!(find(TEXT, "preprocess[1].nope"), Some((5, 5)));
        assert_eq!(find(TEXT, "preprocess[9]"), Some((3, 17)));
    }

    #[test]
    fn in_file_adds_the_location() {
        let e = in_file(Error::invalid_spec("preprocess[1] (b)", "bad").at("fields[1]"), TEXT, "spec.json");
        assert_eq!(e.to_string(), "bad (spec.json:7:23)");
        assert_eq!(e.spec_line(), Some((7, 23)));
        assert_eq!(e.path(), Some("spec.json"));
        assert_eq!(e.spec_at(), Some("preprocess[1].fields[1]"));
    }
}
