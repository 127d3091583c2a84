// Images: decoding and transforming batches of images natively, in
// parallel, into a model-ready tensor.
import { fromNative, invalidArg, OxinferError } from './errors'
import { native, type NameOf } from './native'
import { checkKeys, describeValue, isPlainObject, oneOf } from './options'
import { outputTensor, type Tensor } from './tensor'

/** ImageNet's per-channel mean and std (on 0–1 values). */
export const IMAGENET = Object.freeze({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] })

/** The element types an ImageProcessor's tensor may have (the `output` option). */
export type ImageOutputType = NameOf<'ImageOutput'>

/**
 * Options of {@link ImageProcessor}. `O` is the `output` option's type, so
 * that `{ output: 'uint8' }` makes `Tensor<'uint8'>`s.
 */
export interface ImageOptions<O extends ImageOutputType = ImageOutputType> {
  /** Resize to an exact size, or the shorter side to a length (aspect kept, torchvision). Default: no resize. */
  resize?: { width: number; height: number } | { shorter: number }
  /** 'bilinear' (default; Pillow's, antialiased when downscaling) or 'nearest' (Pillow's). */
  filter?: NameOf<'ImageFilter'>
  /** Crop the centre (offsets rounded half to even, as torchvision). Default: no crop. */
  centerCrop?: { width: number; height: number }
  /** 'rgb' (default) or 'gray' (Pillow's convert('L')). */
  color?: NameOf<'ImageColor'>
  /** Per-channel mean and std applied after `scale`, or 'imagenet'. Default: none. */
  normalize?: { mean: readonly number[]; std: readonly number[] } | 'imagenet'
  /** Multiplies pixel values before normalising. Default 1/255. */
  scale?: number
  /** 'chw' (default) or 'hwc'. */
  layout?: NameOf<'ImageLayout'>
  /** 'float32' (default) or 'uint8' (raw pixels; no scale or normalize). */
  output?: O
  /** Images with more pixels are input errors. Default 100,000,000. */
  maxPixels?: number
}

/** Encoded PNG/JPEG bytes, or raw interleaved pixels. */
export type ImageSource = Uint8Array | { data: Uint8Array; width: number; height: number; channels: 1 | 3 | 4 }

const IMAGE_KEYS = ['resize', 'filter', 'centerCrop', 'color', 'normalize', 'scale', 'layout', 'output', 'maxPixels'] as const

/**
 * Decodes and transforms batches of images natively and in parallel, off the
 * JS thread, into a model-ready tensor ([n, C, H, W] by default): a
 * `Tensor<'float32'>`, or a `Tensor<'uint8'>` with `output: 'uint8'`.
 */
export interface ImageProcessor<O extends ImageOutputType = ImageOutputType> {
  /** The options it was made with (frozen). */
  readonly options: Readonly<ImageOptions<O>>
  /** Processes a batch into one tensor. A bad image rejects with ERR_INVALID_INPUT naming its row. */
  run(images: readonly ImageSource[], options?: { field?: string }): Promise<Tensor<O>>
}

/** The `ImageProcessor` constructor: without `output`, the processor makes float32 tensors. */
export interface ImageProcessorConstructor {
  /** Checks the options; a bad one throws ERR_INVALID_ARGUMENT. */
  new <O extends ImageOutputType = 'float32'>(options?: ImageOptions<O>): ImageProcessor<O>
  readonly prototype: ImageProcessor
}

/** The class behind `ImageProcessor` (named ImageProcessor at run time); typed by {@link ImageProcessorConstructor}. */
const ImageProcessorClass = class ImageProcessor {
  readonly options: Readonly<ImageOptions>
  #native: Record<string, unknown>

  constructor(options: ImageOptions = {}) {
    if (!isPlainObject(options)) throw invalidArg('ImageProcessor: options must be an object')
    checkKeys('image', options, IMAGE_KEYS)
    const o = options
    const posInt = (v: unknown, what: string): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw invalidArg(`${what} must be an integer from 1 to 65535`)
      return v
    }
    let resize = 'none'
    let width = 0
    let height = 0
    let shorter = 0
    if (o.resize !== undefined) {
      if (!isPlainObject(o.resize)) throw invalidArg('resize must be { width, height } or { shorter }')
      // Every key either form allows, so a misspelt one is named with all of them.
      checkKeys('resize', o.resize, ['width', 'height', 'shorter'])
      if ('shorter' in o.resize) {
        checkKeys('resize', o.resize, ['shorter'])
        resize = 'shorter'
        shorter = posInt(o.resize.shorter, 'resize.shorter')
      } else {
        checkKeys('resize', o.resize, ['width', 'height'])
        resize = 'exact'
        width = posInt((o.resize as { width: number }).width, 'resize.width')
        height = posInt((o.resize as { height: number }).height, 'resize.height')
      }
    }
    let cropWidth: number | undefined
    let cropHeight: number | undefined
    if (o.centerCrop !== undefined) {
      if (!isPlainObject(o.centerCrop)) throw invalidArg('centerCrop must be { width, height }')
      checkKeys('centerCrop', o.centerCrop, ['width', 'height'])
      cropWidth = posInt(o.centerCrop.width, 'centerCrop.width')
      cropHeight = posInt(o.centerCrop.height, 'centerCrop.height')
    }
    const color = oneOf('color', o.color, native.ImageColor, 'rgb')
    const channels = color === 'gray' ? 1 : 3
    let mean: number[] | undefined
    let std: number[] | undefined
    if (o.normalize !== undefined) {
      const n = o.normalize === 'imagenet' ? IMAGENET : o.normalize
      if (!isPlainObject(n) || !Array.isArray(n.mean) || !Array.isArray(n.std)) throw invalidArg("normalize must be { mean, std } or 'imagenet'")
      if (n.mean.length !== channels || n.std.length !== channels || [...n.mean, ...n.std].some((x) => typeof x !== 'number' || !Number.isFinite(x)) || n.std.some((x) => x === 0)) {
        throw invalidArg(`normalize needs ${channels} finite means and ${channels} non-zero stds for color '${color}'`)
      }
      mean = [...n.mean]
      std = [...n.std]
    }
    const scale = o.scale ?? 1 / 255
    if (typeof scale !== 'number' || !Number.isFinite(scale)) throw invalidArg('scale must be a finite number')
    const maxPixels = o.maxPixels ?? 100_000_000
    if (typeof maxPixels !== 'number' || !Number.isInteger(maxPixels) || maxPixels < 1) throw invalidArg('maxPixels must be a positive integer')
    this.#native = {
      resize,
      width,
      height,
      shorter,
      filter: oneOf('filter', o.filter, native.ImageFilter, 'bilinear'),
      cropWidth,
      cropHeight,
      color,
      mean,
      std,
      scale,
      layout: oneOf('layout', o.layout, native.ImageLayout, 'chw'),
      output: oneOf('output', o.output, native.ImageOutput, 'float32'),
      maxPixels,
    }
    this.options = Object.freeze({ ...options })
  }

  async run(images: readonly ImageSource[], options: { field?: string } = {}): Promise<Tensor<ImageOutputType>> {
    if (!Array.isArray(images)) throw invalidArg('ImageProcessor.run: pass an array of images')
    if (!isPlainObject(options)) throw invalidArg('ImageProcessor.run: options must be an object')
    checkKeys('ImageProcessor.run', options, ['field'])
    const field = options.field ?? 'image'
    if (typeof field !== 'string') throw invalidArg('ImageProcessor.run: options.field must be a string')
    const list: unknown[] = images.map((img, i) => {
      if (img instanceof Uint8Array) return img
      if (isPlainObject(img) && img.data instanceof Uint8Array) return [img.data, img.width, img.height, img.channels]
      throw new OxinferError('ERR_INVALID_INPUT', `row ${i}: expected encoded image bytes (Uint8Array) or { data, width, height, channels }, got ${describeValue(img)}`, { row: i, field })
    })
    // With a fixed output size the workers write straight into this array,
    // so a large batch is never copied on the JS thread.
    const o = this.#native
    const fixed = o.cropWidth !== undefined ? [o.cropWidth, o.cropHeight] : o.resize === 'exact' ? [o.width, o.height] : undefined
    const channels = o.color === 'gray' ? 1 : 3
    const out = fixed ? (o.output === 'uint8' ? new Uint8Array(list.length * channels * (fixed[0] as number) * (fixed[1] as number)) : new Float32Array(list.length * channels * (fixed[0] as number) * (fixed[1] as number))) : undefined
    let p: unknown[]
    try {
      p = await native.processImages(list, o, field, out)
    } catch (e) {
      throw fromNative(e)
    }
    const [n, c, h, w, made] = p as [number, number, number, number, Float32Array | Uint8Array | null]
    const data = made ?? out!
    const dims = this.#native.layout === 'chw' ? [n, c, h, w] : [n, h, w, c]
    return outputTensor(data instanceof Float32Array ? 'float32' : 'uint8', data, dims)
  }
}

/** Decodes and transforms batches of images; see {@link ImageProcessor} and {@link ImageProcessorConstructor}. */
export const ImageProcessor = ImageProcessorClass as ImageProcessorConstructor
