//! JSON `data` arrays read straight into typed tensor buffers: serde_json's
//! parser hands each scalar to a visitor that checks it fits the datatype and
//! writes it into its slot, so no JSON value tree is built (FP64 data is
//! read from its text instead, see `float64`). Nested arrays must follow the
//! shape exactly; flat arrays must hold the element count.

use std::marker::PhantomData;

use oxinfer_core::tensor::AlignedBytes;
use oxinfer_core::{DType, InputData};
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::datatype::datatype_name;
use super::{float64, nonfinite};

/// Reads one tensor's `data` as a seed: the caller streams it from the
/// request's own parser (`Value` is the tensor data). A data error leaves its
/// message in `err` (serde's error then only carries a placeholder), without
/// the input's name, which the caller adds.
pub(super) struct DataSeed<'a> {
    pub dtype: DType,
    pub shape: &'a [i64],
    /// Elements the shape holds (already checked against the limits).
    pub count: usize,
    /// Bytes of JSON the data lies in: a bound on how many elements it can hold.
    pub json_len: usize,
    /// The marker key when `NaN`/`Infinity` tokens were rewritten (see `nonfinite`).
    pub marker: Option<&'a str>,
    pub err: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = InputData;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<InputData, D::Error> {
        // n values take at least 2n+1 bytes of JSON ("[1,2]"). When the JSON
        // is too short for the shape nothing is allocated: the values are
        // still read (and dropped) so that the count error names how many
        // there were, and the allocation is bounded by the body's size.
        let n = if self.count <= self.json_len.saturating_sub(1) / 2 { self.count } else { 0 };
        match self.dtype {
            DType::Bool => fill(d, Bools(AlignedBytes::zeroed(n)), self),
            DType::Uint8 => fill(d, Numeric::<u8>::new(n, self.dtype), self),
            DType::Uint16 => fill(d, Numeric::<u16>::new(n, self.dtype), self),
            DType::Uint32 => fill(d, Numeric::<u32>::new(n, self.dtype), self),
            DType::Uint64 => fill(d, Numeric::<u64>::new(n, self.dtype), self),
            DType::Int8 => fill(d, Numeric::<i8>::new(n, self.dtype), self),
            DType::Int16 => fill(d, Numeric::<i16>::new(n, self.dtype), self),
            DType::Int32 => fill(d, Numeric::<i32>::new(n, self.dtype), self),
            DType::Int64 => fill(d, Numeric::<i64>::new(n, self.dtype), self),
            DType::Float16 => fill(d, Numeric::<half::f16>::new(n, self.dtype), self),
            DType::BFloat16 => fill(d, Numeric::<half::bf16>::new(n, self.dtype), self),
            DType::Float32 => fill(d, Numeric::<f32>::new(n, self.dtype), self),
            DType::Float64 => {
                let raw = <&RawValue>::deserialize(d)?;
                let mut sink = Sink::new(Numeric::<f64>::new(n, self.dtype), &self);
                match float64::scan(raw.get(), &mut sink) {
                    Ok(()) => finish(sink, self),
                    Err(m) => Err(fail(self.err, m)),
                }
            }
            DType::String => fill(d, Strings(Vec::with_capacity(n)), self),
        }
    }
}

/// Reads `data` kept aside as raw JSON text (when it came before the input's
/// shape or datatype). Errors are messages without the input's name.
pub(super) fn from_raw(text: &str, dtype: DType, shape: &[i64], count: usize, marker: Option<&str>) -> Result<InputData, String> {
    let mut err = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = DataSeed { dtype, shape, count, json_len: text.len(), marker, err: &mut err };
    match seed.deserialize(&mut de).and_then(|d| de.end().map(|()| d)) {
        Ok(d) => Ok(d),
        Err(e) => Err(err.unwrap_or_else(|| format!("data is not valid: {e}"))),
    }
}

/// Records `msg` (the first error wins) and returns serde's placeholder.
pub(super) fn fail<E: de::Error>(slot: &mut Option<String>, msg: String) -> E {
    if slot.is_none() {
        *slot = Some(msg);
    }
    E::custom("rejected")
}

/// A shape for messages, cut short when it has many dimensions.
pub(super) fn shape_text(shape: &[i64]) -> String {
    const MAX: usize = 16;
    if shape.len() <= MAX {
        return format!("{shape:?}");
    }
    let head: Vec<String> = shape[..MAX].iter().map(i64::to_string).collect();
    format!("[{}, ... ({} dimensions)]", head.join(", "), shape.len())
}

fn fill<'de, D: Deserializer<'de>, T: Target>(d: D, target: T, seed: DataSeed<'_>) -> Result<InputData, D::Error> {
    let mut sink = Sink::new(target, &seed);
    if let Err(e) = (Level { sink: &mut sink, level: 0 }).deserialize(d) {
        if let Some(m) = sink.err.take() {
            *seed.err = Some(m);
        }
        return Err(e);
    }
    finish(sink, seed)
}

fn finish<E: de::Error, T: Target>(sink: Sink<'_, T>, seed: DataSeed<'_>) -> Result<InputData, E> {
    if sink.n != seed.count {
        return Err(fail(seed.err, format!("data has {} values, but shape {} has {} elements", sink.n, shape_text(seed.shape), seed.count)));
    }
    Ok(sink.target.finish())
}

/// One tensor's data being filled in: the checks of nesting and count that
/// every way of reading `data` shares.
pub(super) struct Sink<'a, T> {
    target: T,
    shape: &'a [i64],
    count: usize,
    /// Values written so far.
    n: usize,
    /// Flat (`Some(false)`) or nested (`Some(true)`), as the first element says.
    nested: Option<bool>,
    pub marker: Option<&'a str>,
    /// The first error, for the serde visitor (serde's own error is a placeholder).
    err: Option<String>,
}

impl<'a, T: Target> Sink<'a, T> {
    fn new(target: T, seed: &DataSeed<'a>) -> Self {
        Sink { target, shape: seed.shape, count: seed.count, n: 0, nested: None, marker: seed.marker, err: None }
    }

    /// An array opens at nesting `level` (0: `data` itself).
    pub fn open(&mut self, level: usize) -> Result<(), String> {
        if level == 0 {
            return Ok(());
        }
        match self.nested {
            None => self.nested = Some(true),
            Some(false) => return Err(format!("data mixes values and arrays; send it flat or nested exactly as shape {}", shape_text(self.shape))),
            Some(true) => {}
        }
        if level >= self.shape.len() {
            return Err(format!("data is nested deeper than shape {} allows", shape_text(self.shape)));
        }
        Ok(())
    }

    /// An array at nesting `level` closes, having held `len` elements.
    pub fn close(&mut self, level: usize, len: i64) -> Result<(), String> {
        // A nested array at depth d holds shape[d] elements (the top one too,
        // once its first element has shown the data is nested).
        if self.nested == Some(true) && level < self.shape.len() && len != self.shape[level] {
            return Err(format!("nested data must follow shape {} exactly, but an array at depth {level} has {len} elements", shape_text(self.shape)));
        }
        Ok(())
    }

    /// A value at nesting `level`, written by `put` into the next slot.
    pub fn scalar(&mut self, level: usize, put: impl FnOnce(&mut T, usize) -> Result<(), String>) -> Result<(), String> {
        if level == 0 {
            return Err("data must be an array".into());
        }
        match self.nested {
            None => self.nested = Some(false),
            Some(true) if level != self.shape.len() => {
                return Err(format!("nested data must follow shape {} exactly, but a value sits at depth {level}", shape_text(self.shape)));
            }
            _ => {}
        }
        if self.n >= self.count {
            return Err(format!("data has more values than the {} elements of shape {}", self.count, shape_text(self.shape)));
        }
        let n = self.n;
        put(&mut self.target, n).map_err(|m| format!("element {n}: {m}"))?;
        self.n += 1;
        Ok(())
    }

    /// `scalar` for the serde visitor: an error is kept in `err`.
    fn visit<E: de::Error>(&mut self, level: usize, put: impl FnOnce(&mut T, usize) -> Result<(), String>) -> Result<(), E> {
        let r = self.scalar(level, put);
        r.map_err(|m| fail(&mut self.err, m))
    }
}

/// The seed (and visitor) for a value at one nesting level of `data`.
struct Level<'s, 'a, T> {
    sink: &'s mut Sink<'a, T>,
    level: usize,
}

impl<'de, T: Target> DeserializeSeed<'de> for Level<'_, '_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Target> Visitor<'de> for Level<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of {} values", datatype_name(self.sink.target.dtype()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (sink, level) = (self.sink, self.level);
        if let Err(m) = sink.open(level) {
            return Err(fail(&mut sink.err, m));
        }
        let mut len: i64 = 0;
        while seq.next_element_seed(Level { sink: &mut *sink, level: level + 1 })?.is_some() {
            len += 1;
        }
        let r = sink.close(level, len);
        r.map_err(|m| fail(&mut sink.err, m))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.sink.visit(self.level, |t, i| t.bool(i, v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.sink.visit(self.level, |t, i| t.i64(i, v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.sink.visit(self.level, |t, i| t.u64(i, v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.sink.visit(self.level, |t, i| t.f64(i, v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.sink.visit(self.level, |t, i| t.str(i, v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        let want = want(self.sink.target.dtype());
        self.sink.visit(self.level, |_, _| Err(format!("null where {want}")))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The only object data may hold is a rewritten NaN/Infinity token.
        let v = match self.sink.marker {
            Some(key) => nonfinite::read_marker(&mut map, key)?,
            None => None,
        };
        match v {
            Some(v) => self.sink.visit(self.level, |t, i| t.f64(i, v)),
            None => {
                let want = want(self.sink.target.dtype());
                self.sink.visit(self.level, |_, _| Err(format!("an object where {want}")))
            }
        }
    }
}

/// What a datatype's JSON data holds, for messages.
pub(super) fn want(d: DType) -> String {
    let what = match d {
        DType::Bool => "true or false",
        DType::String => "a string",
        DType::Float16 | DType::BFloat16 | DType::Float32 | DType::Float64 => "a number",
        _ => "an integer",
    };
    format!("{} data needs {what}", datatype_name(d))
}

/// A number for messages (`NaN` and `Infinity` as JSON clients spell them).
pub(super) fn number_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        (if v > 0.0 { "Infinity" } else { "-Infinity" }).into()
    } else {
        ryu::Buffer::new().format_finite(v).to_string()
    }
}

/// A tensor buffer that JSON scalars are written into; each kind of scalar it
/// does not take is refused with a message naming what the datatype needs.
pub(super) trait Target {
    fn dtype(&self) -> DType;
    fn finish(self) -> InputData;

    fn bool(&mut self, _i: usize, v: bool) -> Result<(), String> {
        Err(format!("{v} where {}", want(self.dtype())))
    }
    fn i64(&mut self, _i: usize, v: i64) -> Result<(), String> {
        Err(format!("the number {v} where {}", want(self.dtype())))
    }
    fn u64(&mut self, _i: usize, v: u64) -> Result<(), String> {
        Err(format!("the number {v} where {}", want(self.dtype())))
    }
    fn f64(&mut self, _i: usize, v: f64) -> Result<(), String> {
        Err(format!("the number {} where {}", number_text(v), want(self.dtype())))
    }
    fn str(&mut self, _i: usize, _v: &str) -> Result<(), String> {
        Err(format!("a string where {}", want(self.dtype())))
    }
}

/// Why a number does not fit an element type.
pub(super) enum Misfit {
    Range,
    NotInteger,
    /// A whole number written as a float (`2.0`, `1e3`) for an integer type.
    FloatSpelt,
}

/// An element type of a numeric tensor.
pub(super) trait Elem: Copy {
    const SIZE: usize;
    fn from_u64(v: u64) -> Result<Self, Misfit>;
    fn from_i64(v: i64) -> Result<Self, Misfit>;
    fn from_f64(v: f64) -> Result<Self, Misfit>;
    fn put(self, out: &mut [u8]);
}

macro_rules! int_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_u64(v: u64) -> Result<Self, Misfit> {
                <$t>::try_from(v).map_err(|_| Misfit::Range)
            }
            fn from_i64(v: i64) -> Result<Self, Misfit> {
                <$t>::try_from(v).map_err(|_| Misfit::Range)
            }
            // Integer types take JSON integers only, as Triton does: a float's
            // text may already have been rounded by the parse (serde_json's
            // "1.0000000000000001" and 17-digit "…3.0" come back whole).
            // Integers past the i64/u64 range arrive as floats (rounded to
            // -2^63 or 2^64 at least): those are out of range.
            fn from_f64(v: f64) -> Result<Self, Misfit> {
                Err(if !v.is_finite() || v.fract() != 0.0 {
                    Misfit::NotInteger
                } else if v > -9_223_372_036_854_775_808.0 && v < 18_446_744_073_709_551_616.0 {
                    Misfit::FloatSpelt
                } else {
                    Misfit::Range
                })
            }
            fn put(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_ne_bytes());
            }
        }
    )*};
}
int_elem!(u8, u16, u32, u64, i8, i16, i32, i64);

// Floats take any JSON number, rounded to the nearest value of the type as
// NumPy's astype and Triton's casts do; values beyond the type's range
// round to an infinity (an FP16 70000 is +Infinity) rather than being refused.
macro_rules! float_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_u64(v: u64) -> Result<Self, Misfit> {
                Ok(v as $t)
            }
            fn from_i64(v: i64) -> Result<Self, Misfit> {
                Ok(v as $t)
            }
            fn from_f64(v: f64) -> Result<Self, Misfit> {
                Ok(v as $t)
            }
            fn put(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_ne_bytes());
            }
        }
    )*};
}
float_elem!(f32, f64);

macro_rules! half_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            const SIZE: usize = 2;
            fn from_u64(v: u64) -> Result<Self, Misfit> {
                Ok(<$t>::from_f64(v as f64))
            }
            fn from_i64(v: i64) -> Result<Self, Misfit> {
                Ok(<$t>::from_f64(v as f64))
            }
            fn from_f64(v: f64) -> Result<Self, Misfit> {
                Ok(<$t>::from_f64(v))
            }
            fn put(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_ne_bytes());
            }
        }
    )*};
}
half_elem!(half::f16, half::bf16);

pub(super) struct Numeric<E> {
    buf: AlignedBytes,
    dtype: DType,
    _elem: PhantomData<E>,
}

impl<E: Elem> Numeric<E> {
    fn new(count: usize, dtype: DType) -> Self {
        Numeric { buf: AlignedBytes::zeroed(count * E::SIZE), dtype, _elem: PhantomData }
    }

    fn put(&mut self, i: usize, v: Result<E, Misfit>, text: impl FnOnce() -> String) -> Result<(), String> {
        match v {
            Ok(v) => {
                // Past the buffer only when the JSON was too short to
                // allocate for (see `DataSeed`): the count error follows.
                if let Some(slot) = self.buf.as_mut_slice().get_mut(i * E::SIZE..(i + 1) * E::SIZE) {
                    v.put(slot);
                }
                Ok(())
            }
            Err(m) => {
                let name = datatype_name(self.dtype);
                Err(match m {
                    Misfit::Range => format!("{} is out of range for {name}", text()),
                    Misfit::NotInteger => format!("{} is not an integer, as {name} data needs", text()),
                    Misfit::FloatSpelt => format!("{} is written as a float; {name} data needs integers (no fraction or exponent)", text()),
                })
            }
        }
    }
}

impl<E: Elem> Target for Numeric<E> {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn finish(self) -> InputData {
        InputData::Owned(self.buf)
    }
    fn i64(&mut self, i: usize, v: i64) -> Result<(), String> {
        self.put(i, E::from_i64(v), || v.to_string())
    }
    fn u64(&mut self, i: usize, v: u64) -> Result<(), String> {
        self.put(i, E::from_u64(v), || v.to_string())
    }
    fn f64(&mut self, i: usize, v: f64) -> Result<(), String> {
        self.put(i, E::from_f64(v), || number_text(v))
    }
}

/// BOOL: JSON true and false only, one byte each (0 or 1).
struct Bools(AlignedBytes);

impl Target for Bools {
    fn dtype(&self) -> DType {
        DType::Bool
    }
    fn finish(self) -> InputData {
        InputData::Owned(self.0)
    }
    fn bool(&mut self, i: usize, v: bool) -> Result<(), String> {
        if let Some(slot) = self.0.as_mut_slice().get_mut(i) {
            *slot = v as u8;
        }
        Ok(())
    }
}

/// BYTES: JSON strings (the core's string tensors hold UTF-8 text).
struct Strings(Vec<String>);

impl Target for Strings {
    fn dtype(&self) -> DType {
        DType::String
    }
    fn finish(self) -> InputData {
        InputData::Strings(self.0)
    }
    fn str(&mut self, _i: usize, v: &str) -> Result<(), String> {
        self.0.push(v.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, dtype: DType, shape: &[i64]) -> Result<InputData, String> {
        let count = shape.iter().product::<i64>() as usize;
        from_raw(text, dtype, shape, count, None)
    }

    fn bytes(d: &InputData) -> &[u8] {
        match d {
            InputData::Owned(b) => b.as_slice(),
            _ => panic!("not numeric"),
        }
    }

    #[test]
    fn flat_and_nested_data_give_the_same_bytes() {
        let flat = read("[1,2,3,4,5,6]", DType::Int16, &[2, 3]).unwrap();
        let nested = read("[[1,2,3],[4,5,6]]", DType::Int16, &[2, 3]).unwrap();
        assert_eq!(bytes(&flat), bytes(&nested));
        assert_eq!(bytes(&flat), [1i16, 2, 3, 4, 5, 6].iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<u8>>());
        // Empty tensors, flat or nested.
        assert!(read("[]", DType::Float32, &[0, 3]).is_ok());
        assert!(read("[[],[]]", DType::Float32, &[2, 0]).is_ok());
        // A rank-0 tensor is one value.
        assert_eq!(bytes(&read("[7]", DType::Uint8, &[]).unwrap()), [7]);
    }

    #[test]
    fn nesting_must_follow_the_shape() {
        let e = read("[[1,2],[3,4],[5,6]]", DType::Int16, &[2, 3]).unwrap_err();
        assert!(e.contains("at depth 1 has 2 elements"), "{e}");
        let e = read("[[1,2,3],[4,5,6],[7,8,9]]", DType::Int16, &[2, 3]).unwrap_err();
        assert!(e.contains("more values than the 6 elements"), "{e}");
        let e = read("[[1,2,3]]", DType::Int16, &[2, 3]).unwrap_err();
        assert!(e.contains("at depth 0 has 1 elements"), "{e}");
        let e = read("[[1,2,3],4,5,6]", DType::Int16, &[2, 3]).unwrap_err();
        assert!(e.contains("depth 1"), "{e}");
        let e = read("[1,2,3,[4,5,6]]", DType::Int16, &[2, 3]).unwrap_err();
        assert!(e.contains("mixes"), "{e}");
        let e = read("[[[1],[2],[3]],[[4],[5],[6]]]", DType::Int16, &[2, 3]).unwrap_err();
        assert!(e.contains("deeper"), "{e}");
        let e = read("[[1,2,3,4],[5,6,7,8]]", DType::Int16, &[2, 2, 2]).unwrap_err();
        assert!(e.contains("depth 2"), "{e}");
        let e = read("5", DType::Int16, &[]).unwrap_err();
        assert!(e.contains("must be an array"), "{e}");
    }

    #[test]
    fn numbers_must_fit_their_datatype() {
        let cases: &[(&str, DType, &str)] = &[
            ("[300]", DType::Uint8, "300 is out of range for UINT8"),
            ("[-1]", DType::Uint32, "-1 is out of range for UINT32"),
            ("[1.5]", DType::Int32, "1.5 is not an integer"),
            ("[2147483648]", DType::Int32, "out of range for INT32"),
            ("[-129]", DType::Int8, "out of range for INT8"),
            ("[18446744073709551616]", DType::Uint64, "out of range for UINT64"),
            ("[-9223372036854775809]", DType::Int64, "out of range for INT64"),
            ("[2.0]", DType::Int32, "2.0 is written as a float; INT32 data needs integers"),
            ("[1e3]", DType::Uint8, "1000.0 is written as a float"),
            ("[9007199254740993.0]", DType::Int64, "is written as a float"),
            ("[1]", DType::Bool, "BOOL data needs true or false"),
            ("[true]", DType::Float32, "FP32 data needs a number"),
            ("[\"1\"]", DType::Int64, "a string where INT64"),
            ("[1]", DType::String, "BYTES data needs a string"),
            ("[null]", DType::Float64, "null where FP64"),
            ("[{}]", DType::Float64, "an object where FP64"),
        ];
        for (text, d, want) in cases {
            let e = read(text, *d, &[1]).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains("element 0"), "{text}: {e}");
        }
        // 64-bit integers are exact over their range; floats take integers.
        assert_eq!(bytes(&read("[2, -3]", DType::Float32, &[2]).unwrap()), [2f32, -3.0].iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<u8>>());
        assert_eq!(bytes(&read("[-9223372036854775808]", DType::Int64, &[1]).unwrap()), i64::MIN.to_ne_bytes());
        assert_eq!(bytes(&read("[18446744073709551615]", DType::Uint64, &[1]).unwrap()), u64::MAX.to_ne_bytes());
        assert_eq!(bytes(&read("[9007199254740993]", DType::Int64, &[1]).unwrap()), 9007199254740993i64.to_ne_bytes());
        // FP16 rounds as NumPy does, out-of-range values to infinity.
        let h = read("[1.5, 0.1, 70000, -1e300]", DType::Float16, &[4]).unwrap();
        let want: Vec<u8> = [1.5, 0.1, 70000.0, -1e300].iter().flat_map(|&v| half::f16::from_f64(v).to_ne_bytes()).collect();
        assert_eq!(bytes(&h), want);
        assert_eq!(bytes(&h)[4..6], half::f16::INFINITY.to_ne_bytes());
    }

    #[test]
    fn counts_must_match_and_huge_shapes_allocate_nothing() {
        let e = read("[1,2]", DType::Float32, &[3]).unwrap_err();
        assert!(e.contains("data has 2 values, but shape [3] has 3 elements"), "{e}");
        let e = read("[1,2,3,4]", DType::Float32, &[3]).unwrap_err();
        assert!(e.contains("more values than the 3 elements"), "{e}");
        let e = from_raw("[1]", DType::Float64, &[1 << 28], 1 << 28, None).unwrap_err();
        assert!(e.contains("data has 1 values, but shape [268435456] has 268435456 elements"), "{e}");
    }
}
