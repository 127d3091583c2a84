// Type fixture (compiled by __test__/types.test.ts against the published
// declarations): Tensor<T> narrows `type` and `data` from the constructor's
// arguments, and `Tensor` alone is a union that checking `type` narrows.
import { Session, Tensor, type TensorDataMap, type TensorLike, type TensorType, type TypedTensor } from 'oxinfer'

// An explicit type name.
const f = new Tensor('float32', [1, 2])
const f32: Tensor<'float32'> = f
const n: number = f.data[0]
const fdata: Float32Array = f.data
const ftype: 'float32' = f.type
const i64 = new Tensor('int64', [1n, 2])
const big: bigint = i64.data[0]
const s = new Tensor('string', ['a', 'b'], [2, 1])
const str: string = s.data[0]
const half: Tensor<'float16'> = new Tensor('float16', new Uint16Array(2))
const halfBits: Uint16Array = half.data
const flags: Uint8Array = new Tensor('bool', [true, false]).data

// The type inferred from the data.
const fromF32: Tensor<'float32'> = new Tensor(new Float32Array(4), [2, 2])
const fromF64: Tensor<'float64'> = new Tensor(new Float64Array(1))
const fromI8: Tensor<'int8'> = new Tensor(new Int8Array(1))
const fromU8: Tensor<'uint8'> = new Tensor(new Uint8Array(1))
const fromClamped: Tensor<'uint8'> = new Tensor(new Uint8ClampedArray(1))
const fromI16: Tensor<'int16'> = new Tensor(new Int16Array(1))
const fromU16: Tensor<'uint16'> = new Tensor(new Uint16Array(1))
const fromI32: Tensor<'int32'> = new Tensor(new Int32Array(1))
const fromU32: Tensor<'uint32'> = new Tensor(new Uint32Array(1))
const fromI64 = new Tensor(new BigInt64Array(2))
const fromI64Typed: Tensor<'int64'> = fromI64
const bigFromData: bigint = fromI64.data[0]
const fromU64: Tensor<'uint64'> = new Tensor(new BigUint64Array(1))
const fromStrings = new Tensor(['x', 'y'])
const strFromData: string = fromStrings.data[1]
const fromBools: Tensor<'bool'> = new Tensor([true])
// A type known only at run time gives the union.
declare const someType: TensorType
declare const someData: Float32Array | Int32Array
const anyTyped: Tensor = new Tensor(someType, [])
const anyInferred: Tensor = new Tensor(someData)

// The union narrows on `type`; a generic T keeps its container.
function firstElement(t: Tensor): number | bigint | string {
  if (t.type === 'int64') {
    const x: bigint = t.data[0]
    return x
  }
  if (t.type === 'string') return t.data[0]
  return t.data[0]
}
function dataOf<T extends TensorType>(t: Tensor<T>): TensorDataMap[T] {
  return t.data
}
const viaGeneric: Float32Array = dataOf(f)
const typed: TypedTensor<'int32'> = fromI32
const asLike: TensorLike = f
const u: unknown = f
if (u instanceof Tensor) {
  const dims: readonly number[] = u.dims
  const size: number = u.size
}

// Session results are the union: nothing narrower is known.
async function run(session: Session): Promise<void> {
  const out = await session.run({ x: f, ids: fromI64 })
  const y: Tensor = out.y
  const t: TensorType = y.type
  // @ts-expect-error [TS2322] an output's element type is not known statically
  const notKnown: Tensor<'float32'> = out.y
}

// @ts-expect-error [TS2322] a float32 tensor's elements are numbers
const wrongElement: bigint = f.data[0]
// @ts-expect-error [TS2322] an int64 tensor's elements are bigints
const wrongBig: number = fromI64.data[0]
// @ts-expect-error [TS2322] a string tensor's elements are strings
const wrongString: number = fromStrings.data[0]
// @ts-expect-error [TS2322] a float32 tensor is not an int32 one
const wrongType: Tensor<'int32'> = f
// @ts-expect-error [TS2769] a float32 tensor takes numbers
new Tensor('float32', ['a'])
// @ts-expect-error [TS2769] not a tensor type
new Tensor('float8', [1])
// @ts-expect-error [TS2540] tensors are read-only
f.type = 'float32'
// @ts-expect-error [TS2322] the data of a Tensor<'float32'> is a Float32Array
const wrongContainer: Int32Array = f.data

export { f32, n, fdata, ftype, big, str, halfBits, flags, fromF32, fromF64, fromI8, fromU8, fromClamped, fromI16, fromU16, fromU32, fromI64Typed, bigFromData, fromU64, strFromData, fromBools, anyTyped, anyInferred, firstElement, viaGeneric, typed, asLike, run, s }
export { wrongElement, wrongBig, wrongString, wrongType, wrongContainer }
