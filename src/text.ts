// Text: Hugging Face tokenizers (from a tokenizer.json), run natively, and
// the encodings they return.
import { resolve as resolvePath } from 'node:path'

import { fromNative, invalidArg, OxinferError } from './errors'
import { native, type NameOf, type NativeTokenizer } from './native'
import { checkKeys, describeValue, isPlainObject, oneOf } from './options'
import { Tensor } from './tensor'

/** The element types `ids` may have (the `ids` option). */
export type IdType = NameOf<'IdType'>

/** The container of `ids` for each {@link IdType}. */
export interface IdArrayMap {
  int32: Int32Array
  int64: BigInt64Array
}

/**
 * Options of {@link Tokenizer.encode}. `I` is the `ids` option's type, so
 * that `{ ids: 'int64' }` gives `BigInt64Array` ids.
 */
export interface EncodeOptions<I extends IdType = IdType> {
  /** Add the tokenizer's special tokens (BOS/EOS, [CLS]/[SEP], ...). Default true. */
  addSpecialTokens?: boolean
  /** Truncate to this many tokens, special tokens included. Default: no truncation. */
  maxLength?: number
  /** Which side of a pair loses tokens first. Default 'longest_first'. */
  truncation?: NameOf<'Truncation'>
  /** Overlap kept between overflowing windows. Default 0. */
  stride?: number
  /** false (default), 'longest' (the longest row of the batch) or 'max_length' (needs maxLength). */
  padding?: false | Exclude<NameOf<'TextPadding'>, 'none'>
  padToMultipleOf?: number
  /** Return token offsets, counted in 'utf16' code units (JS string indices), 'chars' or 'bytes'. Default false. */
  offsets?: false | NameOf<'Offsets'>
  /** Return token type ids (segment ids of pairs). Default false. */
  typeIds?: boolean
  /** Element type of `ids`. Default 'int32'; 'int64' gives a BigInt64Array, as models want. */
  ids?: I
  /** Texts longer than this (in UTF-16 units) are input errors. Default 1,000,000. */
  maxChars?: number
}

export interface EncodeBatchOptions<I extends IdType = IdType> extends EncodeOptions<I> {
  /** Second texts of pairs, one per text. */
  pairs?: readonly string[]
}

/** One encoded text; `ids` is an Int32Array, or a BigInt64Array with `ids: 'int64'`. */
export interface Encoding<I extends IdType = IdType> {
  ids: IdArrayMap[I]
  attentionMask: Uint8Array
  typeIds?: Uint8Array
  /** Two per token: start and end. */
  offsets?: Uint32Array
}

/** Makes a BatchEncoding from the addon's encoding of a batch (set once, by the class). */
let batchEncoding: <I extends IdType>(p: unknown[]) => BatchEncoding<I>

/** A batch of encodings as flat columns; `ids` is an Int32Array, or a BigInt64Array with `ids: 'int64'`. */
export class BatchEncoding<I extends IdType = IdType> {
  static {
    batchEncoding = <J extends IdType>(p: unknown[]) => new BatchEncoding<J>(p)
  }

  readonly rows: number
  /** Tokens per row when padded; 0 when rows have their own lengths. */
  readonly seqLen: number
  readonly ids: IdArrayMap[I]
  readonly attentionMask: Uint8Array
  readonly typeIds?: Uint8Array
  readonly offsets?: Uint32Array
  /** Row i spans tokens starts[i] .. starts[i + 1]. */
  readonly starts: Uint32Array

  /** Made by {@link Tokenizer.encodeBatch}. */
  private constructor(p: unknown[]) {
    this.rows = p[0] as number
    this.seqLen = p[1] as number
    this.ids = p[2] as IdArrayMap[I]
    this.attentionMask = p[3] as Uint8Array
    if (p[4]) this.typeIds = p[4] as Uint8Array
    if (p[5]) this.offsets = p[5] as Uint32Array
    this.starts = p[6] as Uint32Array
  }

  /** Views of row `i`. */
  row(i: number): Encoding<I> {
    if (!Number.isInteger(i) || i < 0 || i >= this.rows) throw invalidArg(`row ${i} is out of range (0..${this.rows - 1})`)
    const a = this.starts[i]
    const b = this.starts[i + 1]
    const ids = this.ids as Int32Array | BigInt64Array
    const out: Encoding<I> = { ids: ids.subarray(a, b) as IdArrayMap[I], attentionMask: this.attentionMask.subarray(a, b) }
    if (this.typeIds) out.typeIds = this.typeIds.subarray(a, b)
    if (this.offsets) out.offsets = this.offsets.subarray(2 * a, 2 * b)
    return out
  }

  /** Padded batches as model inputs: input_ids, attention_mask (and token_type_ids), int64 [rows, seqLen]. */
  tensors(): Record<string, Tensor<'int64'>> {
    if (this.seqLen === 0 && this.rows > 0) throw invalidArg('tensors() needs a padded batch (padding: "longest" or "max_length")')
    const dims = [this.rows, this.seqLen]
    const big = (a: ArrayLike<number | bigint>): BigInt64Array => {
      const out = new BigInt64Array(a.length)
      for (let i = 0; i < a.length; i++) out[i] = BigInt(a[i])
      return out
    }
    const ids = this.ids as Int32Array | BigInt64Array
    const out: Record<string, Tensor<'int64'>> = {
      input_ids: new Tensor('int64', ids instanceof BigInt64Array ? ids : big(ids), dims),
      attention_mask: new Tensor('int64', big(this.attentionMask), dims),
    }
    if (this.typeIds) out.token_type_ids = new Tensor('int64', big(this.typeIds), dims)
    return out
  }
}

const ENCODE_KEYS = ['addSpecialTokens', 'maxLength', 'truncation', 'stride', 'padding', 'padToMultipleOf', 'offsets', 'typeIds', 'ids', 'maxChars'] as const

function encodeOptions(o: Record<string, unknown>): { native: object; maxChars: number } {
  const int = (k: string, min: number): number | undefined => {
    const v = o[k]
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw invalidArg(`${k} must be an integer of at least ${min}`)
    return v
  }
  const bool = (k: string, fallback: boolean): boolean => {
    const v = o[k] ?? fallback
    if (typeof v !== 'boolean') throw invalidArg(`${k} must be a boolean`)
    return v
  }
  // `padding: false` is the addon's 'none', which is not spelled out in JS.
  if (o.padding === 'none') throw invalidArg("padding must be false, 'longest' or 'max_length', got \"none\"")
  const padding = o.padding === false || o.padding === undefined ? 'none' : oneOf('padding', o.padding, native.TextPadding)
  const offsets = o.offsets === false || o.offsets === undefined ? undefined : oneOf('offsets', o.offsets, native.Offsets)
  const maxLength = int('maxLength', 1)
  if (padding === 'max_length' && maxLength === undefined) throw invalidArg("padding 'max_length' needs maxLength")
  return {
    native: {
      addSpecialTokens: bool('addSpecialTokens', true),
      maxLength,
      truncation: oneOf('truncation', o.truncation, native.Truncation, 'longest_first'),
      stride: int('stride', 0) ?? 0,
      padding,
      padToMultipleOf: int('padToMultipleOf', 1),
      offsets,
      typeIds: bool('typeIds', false),
      ids: oneOf('ids', o.ids, native.IdType, 'int32'),
    },
    maxChars: int('maxChars', 1) ?? 1_000_000,
  }
}

function checkTexts(texts: unknown, field: string, maxChars: number): string[] {
  if (!Array.isArray(texts)) throw invalidArg(`${field} must be an array of strings`)
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i]
    if (typeof t !== 'string') throw new OxinferError('ERR_INVALID_INPUT', `row ${i}: ${field} must be a string, got ${describeValue(t)}`, { row: i, field })
    if (t.length > maxChars) throw new OxinferError('ERR_INVALID_INPUT', `row ${i}: ${field} has ${t.length} characters, more than maxChars (${maxChars})`, { row: i, field })
  }
  return texts as string[]
}

/** A Hugging Face tokenizer (tokenizer.json), run natively, a batch encoded in parallel off the JS thread. */
export class Tokenizer {
  #native: NativeTokenizer

  private constructor(n: NativeTokenizer) {
    this.#native = n
  }

  /** Loads a tokenizer.json file. Rejects with ERR_MODEL_LOAD when it cannot be read or parsed. */
  static async fromFile(path: string): Promise<Tokenizer> {
    if (typeof path !== 'string' || path === '') throw invalidArg('Tokenizer.fromFile: path must be a non-empty string')
    try {
      return new Tokenizer(await native.loadTokenizer(resolvePath(path)))
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Loads a tokenizer from its JSON (text or bytes). */
  static async fromJSON(json: string | Uint8Array): Promise<Tokenizer> {
    const bytes = typeof json === 'string' ? new TextEncoder().encode(json) : json
    if (!(bytes instanceof Uint8Array)) throw invalidArg('Tokenizer.fromJSON: pass the JSON text or its bytes')
    try {
      return new Tokenizer(await native.loadTokenizer(bytes))
    } catch (e) {
      throw fromNative(e)
    }
  }

  get vocabSize(): number {
    return this.#native.vocabSize
  }

  tokenToId(token: string): number | undefined {
    return this.#native.tokenToId(token) ?? undefined
  }

  idToToken(id: number): string | undefined {
    return this.#native.idToToken(id) ?? undefined
  }

  /** Encodes one text (or a pair). `ids` is an Int32Array, or a BigInt64Array with `{ ids: 'int64' }`. */
  async encode<I extends IdType = 'int32'>(text: string, pair?: string, options: EncodeOptions<I> = {}): Promise<Encoding<I>> {
    const b = await this.encodeBatch<I>([text], { ...options, ...(pair === undefined ? {} : { pairs: [pair] }) })
    return b.row(0)
  }

  /** Encodes a batch in parallel, off the JS thread. `ids` is an Int32Array, or a BigInt64Array with `{ ids: 'int64' }`. */
  async encodeBatch<I extends IdType = 'int32'>(texts: readonly string[], options: EncodeBatchOptions<I> = {}): Promise<BatchEncoding<I>> {
    if (!isPlainObject(options)) throw invalidArg('encodeBatch: options must be an object')
    checkKeys('encode', options, [...ENCODE_KEYS, 'pairs'])
    const { native: opts, maxChars } = encodeOptions(options as Record<string, unknown>)
    const list = checkTexts(texts, 'text', maxChars)
    let pairs: string[] | null = null
    if (options.pairs !== undefined) {
      pairs = checkTexts(options.pairs, 'pair', maxChars)
      if (pairs.length !== list.length) throw invalidArg(`encodeBatch: ${list.length} texts but ${pairs.length} pairs`)
    }
    try {
      return batchEncoding<I>(await this.#native.encodeBatch(list, pairs ?? undefined, opts))
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Turns ids back into text. */
  decode(ids: ArrayLike<number | bigint>, options: { skipSpecialTokens?: boolean } = {}): string {
    const isList = Array.isArray(ids) || (ArrayBuffer.isView(ids) && !(ids instanceof DataView))
    if (!isList) throw invalidArg(`decode: ids must be an array or typed array of token ids, got ${describeValue(ids)}`)
    if (!isPlainObject(options)) throw invalidArg('decode: options must be an object')
    checkKeys('decode', options, ['skipSpecialTokens'])
    const skip = options.skipSpecialTokens ?? false
    if (typeof skip !== 'boolean') throw invalidArg('decode: options.skipSpecialTokens must be a boolean')
    let list: number[]
    try {
      list = Array.from(ids as ArrayLike<number | bigint>, (x) => (typeof x === 'bigint' || typeof x === 'number' ? Number(x) : Number.NaN))
    } catch (e) {
      throw invalidArg(`decode: ids cannot be read (${(e as Error).message})`)
    }
    if (list.some((x) => !Number.isInteger(x) || x < 0)) throw invalidArg('decode: ids must be non-negative integers')
    try {
      return this.#native.decode(list, skip)
    } catch (e) {
      throw fromNative(e)
    }
  }
}
