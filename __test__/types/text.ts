// Type fixture (compiled by __test__/types.test.ts against the published
// declarations): the `ids` option decides the container of token ids.
import { type BatchEncoding, type EncodeOptions, type Encoding, type IdType, type Tensor, Tokenizer } from 'oxinfer'

async function encodings(tok: Tokenizer, opts: EncodeOptions, idType: IdType): Promise<void> {
  // int32 by default, or when asked.
  const plain = await tok.encode('hello')
  const plainIds: Int32Array = plain.ids
  const n: number = plain.ids[0]
  const asked = await tok.encode('hello', undefined, { ids: 'int32', maxLength: 8 })
  const askedIds: Int32Array = asked.ids
  const pair = await tok.encode('hello', 'world', { typeIds: true })
  const pairIds: Int32Array = pair.ids
  // int64 gives BigInt64Array ids.
  const enc = await tok.encode('hello', undefined, { ids: 'int64' })
  const ids: BigInt64Array = enc.ids
  const first: bigint = enc.ids[0]
  const typedEnc: Encoding<'int64'> = enc
  // Batches, and their rows.
  const batch = await tok.encodeBatch(['a', 'b'], { ids: 'int64', padding: 'longest' })
  const batchIds: BigInt64Array = batch.ids
  const rowIds: BigInt64Array = batch.row(0).ids
  const typedBatch: BatchEncoding<'int64'> = batch
  const batch32 = await tok.encodeBatch(['a', 'b'], { pairs: ['c', 'd'] })
  const batch32Ids: Int32Array = batch32.ids
  const row32: Int32Array = batch32.row(1).ids
  // Model inputs are int64 either way.
  const inputs: Record<string, Tensor<'int64'>> = batch32.tensors()
  const inputIds: BigInt64Array = batch.tensors().input_ids.data
  // Options whose `ids` is not known statically give the union.
  const unknownIds: Int32Array | BigInt64Array = (await tok.encode('x', undefined, opts)).ids
  const unknownBatch: Int32Array | BigInt64Array = (await tok.encodeBatch(['x'], { ids: idType })).ids
  // decode takes either.
  const text: string = tok.decode(enc.ids) + tok.decode(plain.ids)

  // @ts-expect-error [TS2322] int64 ids are not an Int32Array
  const wrong: Int32Array = enc.ids
  // @ts-expect-error [TS2322] default ids are not a BigInt64Array
  const wrongDefault: BigInt64Array = plain.ids
  // @ts-expect-error [TS2322] int32 ids hold numbers
  const wrongElement: bigint = asked.ids[0]
  // @ts-expect-error [TS2322] int64 batches hold BigInt64Array ids
  const wrongBatch: Int32Array = batch.ids
  // @ts-expect-error [TS2322] the union is not narrowed without a known option
  const notKnown: BigInt64Array = unknownIds
  // @ts-expect-error [TS2820] ids is 'int32' or 'int64'
  await tok.encode('x', undefined, { ids: 'int16' })
  // @ts-expect-error [TS2353] unknown options are refused
  await tok.encode('x', undefined, { ids: 'int64', idz: 1 })
  void [n, plainIds, askedIds, pairIds, ids, first, typedEnc, batchIds, rowIds, typedBatch, batch32Ids, row32, inputs, inputIds, unknownBatch, text, wrong, wrongDefault, wrongElement, wrongBatch, notKnown]
}

export { encodings }
