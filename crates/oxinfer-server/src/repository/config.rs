//! A model's configuration: `config.json` (Triton's model configuration in
//! its JSON form, the same field names) or the subset of Triton's
//! `config.pbtxt` that oxinfer uses. Everything is optional: a plain ONNX
//! model needs no file, its inputs and outputs are read from the model.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Result, ServerError};

/// What a model folder's configuration may set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// Triton's meaning: above 0, dim 0 of every input and output is the
    /// batch and requests may be merged up to this many rows.
    pub max_batch_size: u32,
    pub dynamic_batching: Option<DynamicBatching>,
    pub instance_group: Vec<InstanceGroup>,
    pub version_policy: Option<VersionPolicy>,
    /// Names and shapes as the configuration declares them (checked against the model).
    pub input: Vec<TensorConfig>,
    pub output: Vec<TensorConfig>,
    /// Triton's stateful models: requests carry `sequence_id`,
    /// `sequence_start` and `sequence_end`, the state stays native.
    pub sequence_batching: Option<SequenceBatching>,
    /// oxinfer's own settings, as Triton's `parameters` map
    /// (`{"intra_op_threads": {"string_value": "1"}}`) or plain values.
    pub parameters: Map<String, Value>,
    pub platform: Option<String>,
    pub backend: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DynamicBatching {
    pub preferred_batch_size: Vec<u32>,
    pub max_queue_delay_microseconds: u64,
    pub priority_levels: u32,
    pub default_queue_policy: Option<QueuePolicy>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueuePolicy {
    pub max_queue_size: u32,
    pub default_timeout_microseconds: u64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InstanceGroup {
    pub count: u32,
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TensorConfig {
    pub name: String,
    pub data_type: Option<String>,
    pub dims: Vec<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SequenceBatching {
    pub max_sequence_idle_microseconds: u64,
    /// Sequences open at once (oxinfer's own; 0: 1024). A start past it is
    /// refused with 503 and Retry-After, since each holds its state.
    pub max_sequences: u64,
    /// Pairs of (state input, state output) names; oxinfer's own, since
    /// Triton's implicit state needs the same pairing.
    pub state: Vec<SequenceState>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SequenceState {
    pub input_name: String,
    pub output_name: String,
}

/// Which versions of a model are served (Triton's version_policy).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum VersionPolicy {
    Latest {
        #[serde(default = "one")]
        num_versions: u32,
    },
    All {},
    Specific {
        #[serde(default)]
        versions: Vec<u64>,
    },
}

fn one() -> u32 {
    1
}

impl VersionPolicy {
    /// The versions served out of those present (sorted ascending).
    pub fn select(&self, present: &[u64]) -> Vec<u64> {
        match self {
            VersionPolicy::Latest { num_versions } => present.iter().rev().take((*num_versions).max(1) as usize).rev().copied().collect(),
            VersionPolicy::All {} => present.to_vec(),
            VersionPolicy::Specific { versions } => present.iter().filter(|v| versions.contains(v)).copied().collect(),
        }
    }
}

impl ModelConfig {
    /// Reads `config.json`, else `config.pbtxt`, in `dir`; the default when neither exists.
    pub fn read(dir: &std::path::Path) -> Result<ModelConfig> {
        let json = dir.join("config.json");
        let pbtxt = dir.join("config.pbtxt");
        let (value, file) = if json.is_file() {
            let text = std::fs::read_to_string(&json).map_err(|e| ServerError::Repository(format!("cannot read {}: {e}", json.display())))?;
            (serde_json::from_str::<Value>(&text).map_err(|e| ServerError::Repository(format!("{}: {e}", json.display())))?, json)
        } else if pbtxt.is_file() {
            let text = std::fs::read_to_string(&pbtxt).map_err(|e| ServerError::Repository(format!("cannot read {}: {e}", pbtxt.display())))?;
            (pbtxt_to_json(&text).map_err(|e| ServerError::Repository(format!("{}: {e}", pbtxt.display())))?, pbtxt)
        } else {
            return Ok(ModelConfig::default());
        };
        ModelConfig::from_value(value).map_err(|e| ServerError::Repository(format!("{}: {e}", file.display())))
    }

    /// A configuration from its JSON form (also what the load API accepts).
    pub fn from_value(value: Value) -> std::result::Result<ModelConfig, String> {
        let c: ModelConfig = serde_json::from_value(value).map_err(|e| e.to_string())?;
        c.check()?;
        Ok(c)
    }

    /// A parameter as a string, whether written `{"string_value": "1"}` or plain.
    pub fn parameter(&self, key: &str) -> Option<String> {
        match self.parameters.get(key)? {
            Value::Object(o) => o.get("string_value").and_then(|v| v.as_str()).map(str::to_string),
            Value::String(s) => Some(s.clone()),
            v => Some(v.to_string()),
        }
    }

    /// Engine instances (pool slots) asked for: the instance groups' counts summed.
    pub fn instances(&self) -> Option<usize> {
        let n: u64 = self.instance_group.iter().map(|g| g.count.max(1) as u64).sum();
        (n > 0).then_some(n as usize)
    }

    /// Refuses values no machine can honour (a request may carry a
    /// configuration through the load API): billions of priority levels,
    /// instances or threads would exhaust memory before failing.
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some(d) = &self.dynamic_batching {
            if d.priority_levels > MAX_PRIORITY_LEVELS {
                return Err(format!("dynamic_batching.priority_levels is {}; at most {MAX_PRIORITY_LEVELS}", d.priority_levels));
            }
        }
        if self.instances().unwrap_or(0) > MAX_INSTANCES {
            return Err(format!("instance_group asks for {} instances; at most {MAX_INSTANCES}", self.instances().unwrap_or(0)));
        }
        if let Some(t) = self.parameter("intra_op_threads") {
            match t.parse::<usize>() {
                Ok(n) if n <= MAX_THREADS => {}
                _ => return Err(format!("parameters.intra_op_threads is '{t}'; an integer from 0 to {MAX_THREADS}")),
            }
        }
        Ok(())
    }
}

const MAX_PRIORITY_LEVELS: u32 = 64;
const MAX_INSTANCES: usize = 256;
const MAX_THREADS: usize = 1024;

/// Fields that Triton's schema repeats: always arrays in the JSON form.
const REPEATED: &[&str] = &["input", "output", "instance_group", "preferred_batch_size", "dims", "versions", "state", "gpus"];

/// The protobuf text format of a Triton config, as the JSON Triton's
/// ModelConfig maps to: enum names become strings, repeated fields arrays.
/// Only the syntax Triton's examples use is read (no extensions, no Any).
pub fn pbtxt_to_json(text: &str) -> std::result::Result<Value, String> {
    let tokens = tokenize(text)?;
    let mut pos = 0;
    let v = message(&tokens, &mut pos, None)?;
    if pos != tokens.len() {
        return Err(format!("unexpected '{}'", tokens[pos]));
    }
    Ok(v)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "{w}"),
            Tok::Str(s) => write!(f, "\"{s}\""),
            Tok::Punct(c) => write!(f, "{c}"),
        }
    }
}

fn tokenize(text: &str) -> std::result::Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' {
            while chars.next().is_some_and(|c| c != '\n') {}
        } else if "{}[]:,;<>".contains(c) {
            chars.next();
            out.push(Tok::Punct(match c {
                '<' => '{',
                '>' => '}',
                c => c,
            }));
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated string".into()),
                    Some(q) if q == c => break,
                    Some('\\') => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(o) => s.push(o),
                        None => return Err("unterminated string".into()),
                    },
                    Some(o) => s.push(o),
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_alphanumeric() || "_-+.".contains(c) {
            let mut w = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_alphanumeric() || "_-+.".contains(d) {
                    w.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Tok::Word(w));
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

fn message(t: &[Tok], pos: &mut usize, close: Option<char>) -> std::result::Result<Value, String> {
    let mut map = Map::new();
    loop {
        match t.get(*pos) {
            None if close.is_none() => return Ok(Value::Object(map)),
            None => return Err("unexpected end of file".into()),
            Some(Tok::Punct(c)) if Some(*c) == close => {
                *pos += 1;
                return Ok(Value::Object(map));
            }
            Some(Tok::Punct(',' | ';')) => *pos += 1,
            Some(Tok::Word(key)) => {
                let key = key.clone();
                *pos += 1;
                if t.get(*pos) == Some(&Tok::Punct(':')) {
                    *pos += 1;
                }
                let v = value(t, pos)?;
                let repeated = REPEATED.contains(&key.as_str());
                match (map.get_mut(&key), v) {
                    (Some(Value::Array(a)), Value::Array(more)) => a.extend(more),
                    (Some(Value::Array(a)), v) if repeated => a.push(v),
                    (Some(old), v) => {
                        let first = old.take();
                        *old = Value::Array(vec![first, v]);
                    }
                    (None, Value::Array(a)) => {
                        map.insert(key, Value::Array(a));
                    }
                    (None, v) if repeated => {
                        map.insert(key, Value::Array(vec![v]));
                    }
                    (None, v) => {
                        map.insert(key, v);
                    }
                }
            }
            Some(other) => return Err(format!("expected a field name, found '{other}'")),
        }
    }
}

fn value(t: &[Tok], pos: &mut usize) -> std::result::Result<Value, String> {
    let tok = t.get(*pos).ok_or("unexpected end of file")?.clone();
    *pos += 1;
    Ok(match tok {
        Tok::Punct('{') => message(t, pos, Some('}'))?,
        Tok::Punct('[') => {
            let mut items = Vec::new();
            loop {
                match t.get(*pos) {
                    Some(Tok::Punct(']')) => {
                        *pos += 1;
                        break;
                    }
                    Some(Tok::Punct(',')) => *pos += 1,
                    Some(_) => items.push(value(t, pos)?),
                    None => return Err("unterminated list".into()),
                }
            }
            Value::Array(items)
        }
        Tok::Str(s) => Value::String(s),
        Tok::Word(w) => {
            if let Ok(i) = w.parse::<i64>() {
                Value::from(i)
            } else if let Ok(f) = w.parse::<f64>() {
                serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::String(w))
            } else if w == "true" || w == "false" {
                Value::Bool(w == "true")
            } else {
                Value::String(w)
            }
        }
        Tok::Punct(c) => return Err(format!("unexpected '{c}'")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_triton_subset() {
        let text = r#"
            name: "penguins"   # a comment
            platform: "onnxruntime_onnx"
            max_batch_size: 64
            input [ { name: "x" data_type: TYPE_FP32 dims: [ 16 ] } ]
            output { name: "y" data_type: TYPE_FP32 dims: [ 2 ] }
            instance_group [ { count: 2 kind: KIND_CPU } ]
            dynamic_batching { preferred_batch_size: [ 8, 16 ] max_queue_delay_microseconds: 100 }
            version_policy: { latest: { num_versions: 2 } }
        "#;
        let v = pbtxt_to_json(text).unwrap();
        let c = ModelConfig::from_value(v).unwrap();
        assert_eq!(c.max_batch_size, 64);
        assert_eq!(c.input[0].name, "x");
        assert_eq!(c.input[0].dims, vec![16]);
        assert_eq!(c.output[0].data_type.as_deref(), Some("TYPE_FP32"));
        assert_eq!(c.instances(), Some(2));
        let d = c.dynamic_batching.unwrap();
        assert_eq!(d.preferred_batch_size, vec![8, 16]);
        assert_eq!(d.max_queue_delay_microseconds, 100);
        assert_eq!(c.version_policy, Some(VersionPolicy::Latest { num_versions: 2 }));
    }

    #[test]
    fn refuses_broken_text() {
        assert!(pbtxt_to_json("input [ { name: \"x\" ").is_err());
        assert!(pbtxt_to_json("name: \"x").is_err());
        assert!(pbtxt_to_json("} ").is_err());
    }

    #[test]
    fn version_policies_select() {
        let present = [1, 2, 5];
        assert_eq!(VersionPolicy::Latest { num_versions: 1 }.select(&present), vec![5]);
        assert_eq!(VersionPolicy::Latest { num_versions: 2 }.select(&present), vec![2, 5]);
        assert_eq!(VersionPolicy::All {}.select(&present), vec![1, 2, 5]);
        assert_eq!(VersionPolicy::Specific { versions: vec![1, 7] }.select(&present), vec![1]);
    }
}
