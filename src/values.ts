// Non-tensor outputs (ONNX sequences and maps, such as scikit-learn's ZipMap,
// and optionals) as JS values: a map from strings as a plain object, a map
// from int64 keys as a Map with bigint keys, a sequence as an array of its
// items (tensors as Tensor), an empty optional as null (one holding a value
// arrives as that value). The addon sends them as JSON (crates/oxinfer-core/src/onnx/convert.rs,
// non_tensor_json); this module turns that JSON into values.
import { ARRAY_CTORS, outputTensor, type Tensor, type TensorType } from './tensor'

/**
 * A map output: `{ label: probability }` for string keys (an object without
 * a prototype, so that any class name is a key; as in any JS object,
 * integer-like keys list first, in numeric order), a `Map` for int64 keys
 * (bigint), in the model's order; int64 values are bigint.
 */
export type MapValue = Record<string, number | bigint> | Map<bigint, number | bigint>
/** A sequence output: its tensors, or its maps (ZipMap: one map per row). */
export type SequenceValue = Tensor[] | MapValue[]
/** What a non-tensor output comes back as: `null` is an empty optional. */
export type NonTensorValue = SequenceValue | MapValue | null
/**
 * Any output's value, for typing `session.run<T>()` where a model has
 * non-tensor outputs: `run<{ label: Tensor; probabilities: MapValue[] }>(feeds)`.
 */
export type OutputValue = Tensor | NonTensorValue

/** @internal The type `unpack` reports for a non-tensor output. */
export const NON_TENSOR = 'nonTensor'

interface JsonTensor {
  kind: 'tensor'
  type: TensorType
  dims: number[]
  data: (number | string | boolean)[]
}
interface JsonMap {
  kind: 'map'
  keyType: string
  valueType: string
  keys: string[]
  values: (number | string)[]
}
interface JsonSequence {
  kind: 'sequence'
  items: (JsonTensor | JsonMap | JsonSequence)[]
}

/** A JSON number, or the strings JSON has for NaN and the infinities ("NaN", "Infinity", "-Infinity"). */
const num = (x: number | string | boolean): number => (typeof x === 'number' ? x : Number(x))

function tensorOf(j: JsonTensor): Tensor {
  const d = j.data
  let data: unknown
  // Half-precision elements of a sequence arrive as float32 numbers.
  const type = j.type === 'float16' || j.type === 'bfloat16' ? 'float32' : j.type
  if (type === 'string') data = d as string[]
  else if (type === 'int64') data = BigInt64Array.from(d as string[], (s) => BigInt(s))
  else if (type === 'uint64') data = BigUint64Array.from(d as string[], (s) => BigInt(s))
  else if (type === 'bool') data = Uint8Array.from(d as boolean[], (b) => (b ? 1 : 0))
  else data = (ARRAY_CTORS[type] as unknown as { from(a: ArrayLike<number>): unknown }).from(d.map(num))
  return outputTensor(type as TensorType, data, j.dims)
}

function mapOf(j: JsonMap): MapValue {
  const value = (v: number | string): number | bigint => (j.valueType === 'int64' ? BigInt(v as string) : num(v))
  if (j.keyType === 'string') {
    const o = Object.create(null) as Record<string, number | bigint>
    j.keys.forEach((k, i) => Object.defineProperty(o, k, { value: value(j.values[i]), enumerable: true, writable: true, configurable: true }))
    return o
  }
  return new Map(j.keys.map((k, i) => [BigInt(k), value(j.values[i])]))
}

function valueOf(j: JsonTensor | JsonMap | JsonSequence | null): NonTensorValue | Tensor {
  if (j === null) return null
  if (j.kind === 'tensor') return tensorOf(j)
  if (j.kind === 'map') return mapOf(j)
  return j.items.map(valueOf) as SequenceValue
}

/** @internal A non-tensor output's JSON as its JS value. */
export function decodeNonTensor(json: string): NonTensorValue {
  return valueOf(JSON.parse(json) as JsonMap | JsonSequence | null) as NonTensorValue
}

/** @internal One output as callers get it: a Tensor, or a non-tensor's value. */
export function outputValue(type: TensorType | typeof NON_TENSOR, data: unknown, dims: number[]): Tensor {
  return (type === NON_TENSOR ? data : outputTensor(type, data, dims)) as Tensor
}
