import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

import { IMAGENET, ImageProcessor, OxinferError } from '../index.js'
import { fixture, readJson, rejectsWith, require } from './helpers'

const ref = readJson('images/reference.json')
const images: any[] = ref.images
const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))
const f32 = (s: string) => {
  const b = Buffer.from(s, 'base64')
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4)
}
const bytesOf = (file: string) => new Uint8Array(readFileSync(fixture(`images/${file}`)))
const png = images.filter((i) => i.format === 'PNG')
const jpeg = images.filter((i) => i.format === 'JPEG')
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

describe('decoding', () => {
  it('PNGs (RGBA, gray, palette, 16-bit gray) decode to exactly what Pillow gives', async () => {
    const raw = new ImageProcessor({ output: 'uint8', layout: 'hwc' })
    for (const im of png) {
      const t = await raw.run([bytesOf(im.file)])
      expect(t.dims, im.file).toEqual([1, im.size[1], im.size[0], 3])
      expect(maxDiff(t.data as Uint8Array, b64(im.rgb_b64)), im.file).toBe(0)
    }
  })

  it('JPEGs decode within ±2 of Pillow/libjpeg-turbo (decoders differ legitimately)', async () => {
    const raw = new ImageProcessor({ output: 'uint8', layout: 'hwc' })
    for (const im of jpeg) {
      const t = await raw.run([bytesOf(im.file)])
      const [w, h] = im.size
      expect(t.dims).toEqual([1, h, w, 3])
      const d = t.data as Uint8Array
      for (const [x, y, px] of JSON.parse(typeof im.rgb_samples === 'string' ? im.rgb_samples : JSON.stringify(im.rgb_samples))) {
        for (let c = 0; c < 3; c++) expect(Math.abs(d[(y * w + x) * 3 + c] - px[c]), `${im.file} (${x},${y})`).toBeLessThanOrEqual(2)
      }
    }
  })
})

describe('transforms on the same pixels match Pillow exactly', () => {
  // Raw RGB pixels as Pillow decoded them, so only the transforms are compared.
  const rawOf = (im: any) => ({ data: b64(im.rgb_b64), width: im.size[0], height: im.size[1], channels: 3 as const })

  it('bilinear (antialiased) and nearest resize to 224×224', async () => {
    for (const filter of ['bilinear', 'nearest'] as const) {
      const p = new ImageProcessor({ resize: { width: 224, height: 224 }, filter, output: 'uint8', layout: 'hwc' })
      for (const im of png) {
        const t = await p.run([rawOf(im)])
        expect(maxDiff(t.data as Uint8Array, b64(im[`resize_${filter}_224_b64`])), `${filter} ${im.file}`).toBeLessThanOrEqual(1)
      }
    }
  })

  it('shorter side to 256, then a centre crop of 224 (half-to-even offsets)', async () => {
    const p = new ImageProcessor({ resize: { shorter: 256 }, centerCrop: { width: 224, height: 224 }, output: 'uint8', layout: 'hwc' })
    for (const im of png) {
      const t = await p.run([rawOf(im)])
      expect(t.dims).toEqual([1, 224, 224, 3])
      expect(maxDiff(t.data as Uint8Array, b64(im.resize256_crop224.b64)), im.file).toBeLessThanOrEqual(1)
    }
  })

  it('normalises to float32 CHW within 1e-5', async () => {
    const p = new ImageProcessor({ normalize: 'imagenet' })
    for (const im of png) {
      const t = await p.run([rawOf(im)])
      expect(t.dims).toEqual([1, 3, im.size[1], im.size[0]])
      expect(maxDiff(t.data as Float32Array, f32(im.normalized_native_chw_f32_b64)), im.file).toBeLessThan(1e-5)
    }
  })

  it("grayscale is Pillow's convert('L')", async () => {
    const im = images.find((i) => i.gray_L)
    const t = await new ImageProcessor({ color: 'gray', output: 'uint8', layout: 'hwc' }).run([rawOf(im)])
    expect(t.dims).toEqual([1, im.size[1], im.size[0], 1])
    expect(maxDiff(t.data as Uint8Array, b64(im.gray_L.b64))).toBe(0)
  })

  it('a full photo pipeline from JPEG bytes stays within the decoder tolerance', async () => {
    const china = jpeg.find((i) => i.resize256_crop224.normalized_chw_f32_b64)
    const p = new ImageProcessor({ resize: { shorter: 256 }, centerCrop: { width: 224, height: 224 }, normalize: IMAGENET })
    const t = await p.run([bytesOf(china.file), bytesOf(china.file)])
    expect(t.dims).toEqual([2, 3, 224, 224])
    const want = f32(china.resize256_crop224.normalized_chw_f32_b64)
    const one = (t.data as Float32Array).subarray(0, want.length)
    let sum = 0
    for (let i = 0; i < want.length; i++) sum += Math.abs(one[i] - want[i])
    // ±2 decoder units become ~0.035 after normalisation; the mean error is far smaller.
    expect(maxDiff(one, want)).toBeLessThan(0.06)
    expect(sum / want.length).toBeLessThan(0.01)
  })
})

describe('bad images', () => {
  const p = new ImageProcessor({ resize: { width: 32, height: 32 } })
  const good = bytesOf('gray_40x30.png')

  it('corrupt bytes, wrong channel counts, oversized images and non-images each name the row', async () => {
    let e = await rejectsWith(p.run([good, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3])]), 'ERR_INVALID_INPUT')
    expect([e.row, e.field]).toEqual([1, 'image'])
    const truncated = good.subarray(0, good.length >> 1)
    e = await rejectsWith(p.run([truncated]), 'ERR_INVALID_INPUT')
    expect(e.row).toBe(0)
    e = await rejectsWith(p.run([good, good, { data: new Uint8Array(12), width: 2, height: 2, channels: 2 as 3 }]), 'ERR_INVALID_INPUT')
    expect(e.row).toBe(2)
    e = await rejectsWith(p.run([{ data: new Uint8Array(11), width: 2, height: 2, channels: 3 }]), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(/bytes/)
    e = await rejectsWith(new ImageProcessor({ maxPixels: 100 }).run([good]), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(/maxPixels/)
    e = await rejectsWith(p.run([good, 'photo.png' as never]), 'ERR_INVALID_INPUT')
    expect(e.row).toBe(1)
    e = await rejectsWith(p.run([new Uint16Array(4) as never]), 'ERR_INVALID_INPUT')
    e = await rejectsWith(new ImageProcessor().run([good, bytesOf('rgba_37x23.png')]), 'ERR_INVALID_INPUT')
    expect(e.row).toBe(1)
    expect(e.message).toMatch(/fixed size/)
    e = await rejectsWith(new ImageProcessor({ centerCrop: { width: 64, height: 64 } }).run([good], { field: 'photo' }), 'ERR_INVALID_INPUT')
    expect(e.field).toBe('photo')
  })

  it('bad options throw ERR_INVALID_ARGUMENT', () => {
    expect(() => new ImageProcessor({ resize: { width: 0, height: 3 } })).toThrow(OxinferError)
    expect(() => new ImageProcessor({ sizes: 1 } as never)).toThrow(OxinferError)
    expect(() => new ImageProcessor({ normalize: { mean: [0.5], std: [0.5] } })).toThrow(OxinferError)
    expect(() => new ImageProcessor({ color: 'gray', normalize: 'imagenet' })).toThrow(OxinferError)
    expect(() => new ImageProcessor({ filter: 'bicubic' } as never)).toThrow(OxinferError)
    expect(() => new ImageProcessor({ normalize: { mean: [0, 0, 0], std: [1, 0, 1] } })).toThrow(OxinferError)
  })

  it('an empty batch gives an empty tensor', async () => {
    const t = await p.run([])
    expect(t.dims[0]).toBe(0)
  })
})

describe('the addon itself (what the public API never lets through)', () => {
  // The TS layer always passes an output array of the right kind; these
  // reach the addon's checks directly, which must encode them like any other.
  const native = require('./binding.js')
  const { fromNative } = require('./src/errors.js')
  const options = { resize: 'exact', width: 8, height: 8, shorter: 0, filter: 'bilinear', color: 'rgb', scale: 1 / 255, layout: 'chw', output: 'float32', maxPixels: 1e8 }
  const image = bytesOf('flower.jpg')

  it.each([
    ['a plain array', [0, 1, 2], /out must be a typed array/],
    ['a typed array of the wrong kind', new Int32Array(3 * 8 * 8), /out must be a Float32Array/],
  ])('refuses %s as the output buffer with ERR_INVALID_ARGUMENT', (_what, out, message) => {
    let thrown: unknown
    try {
      native.processImages([image], options, 'img', out)
    } catch (e) {
      thrown = e
    }
    expect(String((thrown as Error).message)).toMatch(/^ERR_INVALID_ARGUMENT\u001f/)
    const e = fromNative(thrown)
    expect(e).toBeInstanceOf(OxinferError)
    expect(e.code).toBe('ERR_INVALID_ARGUMENT')
    expect(e.message).toMatch(message)
  })

  it('refuses an option name outside the declared enum before any work', () => {
    expect(() => native.processImages([image], { ...options, filter: 'bicubic' }, 'img')).toThrow(/bicubic|ImageFilter/)
    expect(() => new ImageProcessor({ filter: 'bicubic' as never })).toThrow(/filter must be one of 'bilinear', 'nearest', got "bicubic"/)
  })
})

describe('option messages', () => {
  it('a misspelt resize key is named with every allowed key', () => {
    expect(() => new ImageProcessor({ resize: { shortest: 224 } as never })).toThrow(/unknown resize option 'shortest'; allowed: width, height, shorter/)
  })
})
