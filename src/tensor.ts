// Tensors: the element types, their data containers and type codes, the
// checks and conversions of the Tensor constructor, and the unchecked
// construction of tensors from trusted native output.
import { invalidArg, OxinferError } from './errors'
import { isPlainObject, showValue } from './options'

/** Element types, with onnxruntime-common's names. */
export type TensorType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string'

/** The data container of each type (onnxruntime-common's conventions). */
export interface TensorDataMap {
  float32: Float32Array
  float64: Float64Array
  /** Raw IEEE half-precision bits. */
  float16: Uint16Array
  /** Raw bfloat16 bits (the high half of a float32's bits). */
  bfloat16: Uint16Array
  int8: Int8Array
  uint8: Uint8Array
  int16: Int16Array
  uint16: Uint16Array
  int32: Int32Array
  uint32: Uint32Array
  int64: BigInt64Array
  uint64: BigUint64Array
  /** 0 or 1 per element. */
  bool: Uint8Array
  string: string[]
}

/** What the constructor also accepts, converted on construction (a copy). */
export interface TensorInputMap {
  float32: Float32Array | readonly number[]
  float64: Float64Array | readonly number[]
  float16: Uint16Array | readonly number[]
  bfloat16: Uint16Array | readonly number[]
  int8: Int8Array | readonly number[]
  uint8: Uint8Array | Uint8ClampedArray | readonly number[]
  int16: Int16Array | readonly number[]
  uint16: Uint16Array | readonly number[]
  int32: Int32Array | readonly number[]
  uint32: Uint32Array | readonly number[]
  int64: BigInt64Array | readonly (bigint | number)[]
  uint64: BigUint64Array | readonly (bigint | number)[]
  bool: Uint8Array | readonly boolean[]
  string: readonly string[]
}

/** Any object shaped like a tensor, onnxruntime-common's `Tensor` included. */
export interface TensorLike {
  readonly type: string
  readonly data: unknown
  readonly dims: readonly number[]
}

type NumericArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array

/** @internal The addon's type code of each tensor type. */
export const TYPE_CODES: Record<TensorType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  bfloat16: 16,
}
/** @internal */
export const TYPE_BY_CODE: TensorType[] = []
for (const [name, code] of Object.entries(TYPE_CODES)) TYPE_BY_CODE[code] = name as TensorType

/** @internal The typed array class of each numeric type. */
export const ARRAY_CTORS: Record<Exclude<TensorType, 'string'>, { new (n: number | ArrayLike<any>): NumericArray }> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
}

/** @internal */
export function isTensorType(t: unknown): t is TensorType {
  return typeof t === 'string' && Object.prototype.hasOwnProperty.call(TYPE_CODES, t)
}

/** Infers the tensor type of a typed array (Uint8Array is uint8, not bool). */
function typeOfArray(data: unknown): TensorType | undefined {
  if (data instanceof Float32Array) return 'float32'
  if (data instanceof Float64Array) return 'float64'
  if (data instanceof Int8Array) return 'int8'
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8'
  if (data instanceof Int16Array) return 'int16'
  if (data instanceof Uint16Array) return 'uint16'
  if (data instanceof Int32Array) return 'int32'
  if (data instanceof Uint32Array) return 'uint32'
  if (data instanceof BigInt64Array) return 'int64'
  if (data instanceof BigUint64Array) return 'uint64'
  if (Array.isArray(data) && data.length > 0 && data.every((x) => typeof x === 'string')) return 'string'
  if (Array.isArray(data) && data.length > 0 && data.every((x) => typeof x === 'boolean')) return 'bool'
  return undefined
}

function checkDims(dims: unknown, what: string): number[] {
  if (!Array.isArray(dims)) throw invalidArg(`${what}: dims must be an array of non-negative integers`)
  for (const d of dims) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw invalidArg(`${what}: dims must be non-negative integers, got [${dims.map((x: unknown) => (typeof x === 'number' ? String(x) : typeof x)).join(', ')}]`)
    }
  }
  return dims.slice()
}

/** @internal The element count of `dims`. */
export function product(dims: readonly number[]): number {
  let n = 1
  for (const d of dims) n *= d
  return n
}

/** Checks and, where needed, converts `data` for `type`. Returns the stored container. */
function normaliseData(type: TensorType, data: unknown, what: string): TensorDataMap[TensorType] {
  if (type === 'string') {
    if (!Array.isArray(data)) throw invalidArg(`${what}: a string tensor needs a string[] as data`)
    for (let i = 0; i < data.length; i++) {
      if (typeof data[i] !== 'string') {
        throw invalidArg(`${what}: a string tensor needs strings, but element ${i} is ${typeof data[i]}`)
      }
    }
    return data as string[]
  }
  const Ctor = ARRAY_CTORS[type]
  if (ArrayBuffer.isView(data)) {
    const accepted =
      data instanceof Ctor ||
      (type === 'uint8' && data instanceof Uint8ClampedArray) ||
      (type === 'float16' && (data as { constructor: { name: string } }).constructor.name === 'Float16Array')
    if (!accepted) {
      const got = (data as { constructor: { name: string } }).constructor.name
      throw invalidArg(`${what}: a ${type} tensor needs a ${Ctor.name} as data, got ${got}`)
    }
    if (type === 'uint8' && data instanceof Uint8ClampedArray) {
      return new Uint8Array(data.buffer, data.byteOffset, data.length)
    }
    if (type === 'float16' && !(data instanceof Uint16Array)) {
      const v = data as unknown as { buffer: ArrayBuffer; byteOffset: number; length: number }
      return new Uint16Array(v.buffer, v.byteOffset, v.length)
    }
    return data as TensorDataMap[TensorType]
  }
  if (!Array.isArray(data)) {
    throw invalidArg(`${what}: a ${type} tensor needs a ${Ctor.name} or an array as data, got ${data === null ? 'null' : typeof data}`)
  }
  if (type === 'bool') {
    const out = new Uint8Array(data.length)
    for (let i = 0; i < data.length; i++) {
      const x = data[i]
      if (typeof x !== 'boolean' && x !== 0 && x !== 1) {
        throw invalidArg(`${what}: a bool tensor needs booleans, but element ${i} is ${showValue(x)}`)
      }
      out[i] = x ? 1 : 0
    }
    return out
  }
  const big = type === 'int64' || type === 'uint64'
  for (let i = 0; i < data.length; i++) {
    const x = data[i]
    const ok = big ? typeof x === 'bigint' || (typeof x === 'number' && Number.isInteger(x)) : typeof x === 'number'
    if (!ok) {
      throw invalidArg(`${what}: a ${type} tensor needs ${big ? 'bigints or integers' : 'numbers'}, but element ${i} is ${typeof x === 'string' ? `the string ${JSON.stringify(x)}` : typeof x}`)
    }
  }
  try {
    return (big ? new Ctor(data.map((x) => BigInt(x))) : new Ctor(data)) as TensorDataMap[TensorType]
  } catch (e) {
    throw invalidArg(`${what}: ${(e as Error).message}`)
  }
}

/**
 * A tensor of one element type `T`: `data` is that type's container, so
 * `data[0]` is a `number` for 'float32', a `bigint` for 'int64', a `string`
 * for 'string'. See {@link Tensor}.
 */
export interface TypedTensor<T extends TensorType> {
  readonly type: T
  readonly data: TensorDataMap[T]
  readonly dims: readonly number[]
  readonly size: number
}

/**
 * An n-dimensional array with an element type. A queued run copies its
 * inputs when `run` is called (unless the session has `zeroCopy`), so `data`
 * may change once `run` returns.
 *
 * `Tensor` alone is the union of every {@link TypedTensor}, so checking
 * `t.type` narrows `t.data`; `Tensor<'float32'>` is a float32 tensor.
 */
export type Tensor<T extends TensorType = TensorType> = { [K in T]: TypedTensor<K> }[T]

/**
 * The `Tensor` constructor: `new Tensor(type, data, dims?)`, or
 * `new Tensor(data, dims?)` with the type inferred from the typed array
 * (a Uint8Array is 'uint8'), a string[] or a boolean[]. The explicit form is
 * declared last, so that a type error names what it wants.
 */
export interface TensorConstructor {
  /** A tensor whose type is inferred from a typed array (a Uint8Array is 'uint8'), a string[] or a boolean[]. */
  new (data: Float32Array, dims?: readonly number[]): Tensor<'float32'>
  new (data: Float64Array, dims?: readonly number[]): Tensor<'float64'>
  new (data: Int8Array, dims?: readonly number[]): Tensor<'int8'>
  new (data: Uint8Array | Uint8ClampedArray, dims?: readonly number[]): Tensor<'uint8'>
  new (data: Int16Array, dims?: readonly number[]): Tensor<'int16'>
  new (data: Uint16Array, dims?: readonly number[]): Tensor<'uint16'>
  new (data: Int32Array, dims?: readonly number[]): Tensor<'int32'>
  new (data: Uint32Array, dims?: readonly number[]): Tensor<'uint32'>
  new (data: BigInt64Array, dims?: readonly number[]): Tensor<'int64'>
  new (data: BigUint64Array, dims?: readonly number[]): Tensor<'uint64'>
  new (data: readonly string[], dims?: readonly number[]): Tensor<'string'>
  new (data: readonly boolean[], dims?: readonly number[]): Tensor<'bool'>
  /** Data of a type known only at run time. */
  new (data: TensorDataMap[TensorType] | Uint8ClampedArray | readonly boolean[], dims?: readonly number[]): Tensor
  /** A tensor of an explicit type; `dims` defaults to `[data.length]`. */
  new <T extends TensorType>(type: T, data: TensorInputMap[T], dims?: readonly number[]): Tensor<T>
  readonly prototype: Tensor
}

/** The class behind `Tensor` (named Tensor at run time); typed by {@link TensorConstructor}. */
const TensorClass = class Tensor {
  readonly type: TensorType
  readonly data: TensorDataMap[TensorType]
  readonly dims: readonly number[]
  readonly size: number

  constructor(a: unknown, b?: unknown, c?: unknown) {
    let type: TensorType
    let data: unknown
    let dims: unknown
    if (typeof a === 'string') {
      if (!isTensorType(a)) throw invalidArg(`unknown tensor type '${a}'; expected one of ${Object.keys(TYPE_CODES).join(', ')}`)
      type = a
      data = b
      dims = c
    } else {
      const inferred = typeOfArray(a)
      if (!inferred) {
        throw invalidArg('cannot infer the tensor type: pass a typed array, a string[] or a boolean[], or give the type first')
      }
      type = inferred
      data = a
      dims = b
    }
    const stored = normaliseData(type, data, 'Tensor')
    const length = (stored as { length: number }).length
    const d = dims === undefined ? [length] : checkDims(dims, 'Tensor')
    const size = product(d)
    if (size !== length) {
      throw invalidArg(`Tensor: dims [${d.join(', ')}] hold ${size} elements, but the ${type} data has ${length}`)
    }
    this.type = type
    this.data = stored
    this.dims = Object.freeze(d)
    this.size = size
  }
}

/** Makes a tensor, checking (and where needed converting) its data; see {@link TensorConstructor}. */
export const Tensor = TensorClass as unknown as TensorConstructor

/** @internal Builds a tensor from trusted native output, skipping validation. */
export function outputTensor<T extends TensorType>(type: T, data: unknown, dims: number[]): Tensor<T> {
  const t = Object.create(TensorClass.prototype) as { -readonly [K in keyof InstanceType<typeof TensorClass>]: InstanceType<typeof TensorClass>[K] }
  t.type = type
  t.data = data as TensorDataMap[TensorType]
  t.dims = Object.freeze(dims)
  t.size = product(dims)
  return t as unknown as Tensor<T>
}

/**
 * @internal Tensors by name as the addon's feeds layout, `[name, typeCode,
 * data, dims, ...]`: Tensor instances as they are, onnxruntime-common-like
 * objects checked through the Tensor constructor. `what` and `kind` name the
 * caller in errors ("run: feed 'x' ...").
 */
export function flattenFeeds(what: string, kind: string, feeds: Record<string, TensorLike>): unknown[] {
  if (!isPlainObject(feeds)) throw invalidArg(`${what}: ${kind}s must be an object mapping names to tensors`)
  const flat: unknown[] = []
  for (const name in feeds) {
    if (!Object.hasOwn(feeds, name)) continue
    const t = feeds[name]
    if (t instanceof Tensor) {
      flat.push(name, TYPE_CODES[(t as Tensor).type], t.data, t.dims)
      continue
    }
    if (typeof t !== 'object' || t === null || !('type' in t) || !('data' in t) || !('dims' in t)) {
      throw invalidArg(`${what}: ${kind} '${name}' must be a Tensor or an object with type, data and dims`)
    }
    const type = (t as TensorLike).type
    if (!isTensorType(type)) {
      throw invalidArg(`${what}: ${kind} '${name}' has unknown tensor type ${showValue(type)}`)
    }
    let tensor: Tensor
    try {
      tensor = new Tensor(type, (t as TensorLike).data as TensorInputMap[typeof type], (t as TensorLike).dims)
    } catch (e) {
      const err = e as Error
      const code = e instanceof OxinferError ? e.code : 'ERR_INVALID_ARGUMENT'
      throw new OxinferError(code, String(err?.message).replace(/^Tensor:/, `${what}: ${kind} '${name}':`), { input: name, cause: e })
    }
    flat.push(name, TYPE_CODES[tensor.type], tensor.data, tensor.dims)
  }
  return flat
}
