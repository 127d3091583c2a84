//! Triton's binary tensor data extension: tensor bytes after the JSON
//! header instead of JSON `data`. Fixed-size types lie as little-endian
//! elements; BYTES elements as a 4-byte little-endian length, then the bytes.

use oxinfer_core::tensor::AlignedBytes;
use oxinfer_core::{DType, InputData, OutputTensor};

use super::data::shape_text;
use super::datatype::datatype_name;

// The wire is little-endian and the core's buffers are native, so the bytes
// are copied as they are: every target oxinfer ships for is little-endian.
const _: () = assert!(cfg!(target_endian = "little"), "the binary tensor data codec assumes a little-endian target");

/// One input's binary data (`bytes` is exactly its binary_data_size).
/// Errors are messages without the input's name, which the caller adds.
pub(super) fn decode(dtype: DType, shape: &[i64], count: usize, bytes: &[u8]) -> Result<InputData, String> {
    if dtype == DType::String {
        return strings(shape, count, bytes).map(InputData::Strings);
    }
    let want = count.checked_mul(dtype.size()).ok_or_else(|| "its shape overflows".to_string())?;
    if bytes.len() != want {
        return Err(format!(
            "binary_data_size is {}, but shape {} of {} needs {want} bytes",
            bytes.len(),
            shape_text(shape),
            datatype_name(dtype)
        ));
    }
    if dtype == DType::Bool {
        if let Some(i) = bytes.iter().position(|&b| b > 1) {
            return Err(format!("BOOL element {i} is the byte {}; BOOL bytes must be 0 or 1", bytes[i]));
        }
    }
    Ok(InputData::Owned(AlignedBytes::from_slice(bytes)))
}

fn strings(shape: &[i64], count: usize, bytes: &[u8]) -> Result<Vec<String>, String> {
    // Each element takes at least its 4-byte length: checked before the
    // shape's count is used to allocate.
    if count > bytes.len() / 4 {
        return Err(format!(
            "binary_data_size is {}, too small for the {count} BYTES elements of shape {} (each takes a 4-byte length at least)",
            bytes.len(),
            shape_text(shape)
        ));
    }
    let mut out = Vec::with_capacity(count);
    let mut rest = bytes;
    for i in 0..count {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(format!("BYTES element {i}'s 4-byte length runs past binary_data_size"));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return Err(format!("BYTES element {i} has length {len}, which runs past binary_data_size ({} bytes remain)", tail.len()));
        }
        let (s, tail) = tail.split_at(len);
        let s = std::str::from_utf8(s).map_err(|_| format!("BYTES element {i} is not valid UTF-8; oxinfer's string tensors hold UTF-8 text"))?;
        out.push(s.to_owned());
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(format!(
            "binary_data_size is {}, but the {count} BYTES elements of shape {} take {} bytes",
            bytes.len(),
            shape_text(shape),
            bytes.len() - rest.len()
        ));
    }
    Ok(out)
}

/// The binary size of an output: its bytes, or for BYTES each element's
/// length and contents.
pub(super) fn size(o: &OutputTensor) -> usize {
    match o.strings() {
        Some(s) => s.iter().map(|x| 4 + x.len()).sum(),
        None => o.bytes().len(),
    }
}

/// Appends an output's binary form (`size` bytes).
pub(super) fn append(o: &OutputTensor, out: &mut Vec<u8>) {
    match o.strings() {
        Some(s) => {
            for x in s {
                // Lengths are u32 on the wire; the core cannot make a 4 GiB string.
                out.extend_from_slice(&(x.len() as u32).to_le_bytes());
                out.extend_from_slice(x.as_bytes());
            }
        }
        None => out.extend_from_slice(o.bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(parts: &[&[u8]]) -> Vec<u8> {
        parts.iter().flat_map(|p| (p.len() as u32).to_le_bytes().into_iter().chain(p.iter().copied())).collect()
    }

    #[test]
    fn bytes_elements_are_length_prefixed_utf8() {
        let b = lengths(&[b"hi", b"", "é".as_bytes()]);
        let Ok(InputData::Strings(s)) = decode(DType::String, &[3], 3, &b) else { panic!() };
        assert_eq!(s, ["hi", "", "é"]);
        let e = decode(DType::String, &[2], 2, &lengths(&[b"a", b"\xff"])).unwrap_err();
        assert!(e.contains("element 1 is not valid UTF-8"), "{e}");
        let e = decode(DType::String, &[1], 1, &b[..5]).unwrap_err();
        assert!(e.contains("length 2, which runs past"), "{e}");
        let e = decode(DType::String, &[2], 2, &b).unwrap_err();
        assert!(e.contains("take 10 bytes"), "{e}");
        let e = decode(DType::String, &[4], 4, &b).unwrap_err();
        assert!(e.contains("element 3's 4-byte length"), "{e}");
        let e = decode(DType::String, &[1 << 40], 1 << 40, &b).unwrap_err();
        assert!(e.contains("too small"), "{e}");
    }

    #[test]
    fn fixed_size_data_must_fill_its_shape() {
        let Ok(InputData::Owned(b)) = decode(DType::Int32, &[2], 2, &[1, 0, 0, 0, 2, 0, 0, 0]) else { panic!() };
        assert_eq!(b.as_slice(), [1, 0, 0, 0, 2, 0, 0, 0]);
        let e = decode(DType::Int32, &[3], 3, &[0; 8]).unwrap_err();
        assert!(e.contains("binary_data_size is 8, but shape [3] of INT32 needs 12 bytes"), "{e}");
        let e = decode(DType::Bool, &[2], 2, &[1, 2]).unwrap_err();
        assert!(e.contains("BOOL element 1"), "{e}");
    }
}
