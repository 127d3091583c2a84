// Calibration: fitting Platt's sigmoid to scores and labels, for a 'platt'
// post-processing op.
import { fromNative, invalidArg } from './errors'
import { native } from './native'

/**
 * Fits Platt's calibration p = 1 / (1 + exp(a * score + b)) to scores and 0/1
 * labels (Platt's target smoothing, Newton with backtracking, as LIBSVM and
 * scikit-learn's sigmoid calibration). Put the result in a 'platt' post-processing op.
 */
export function fitPlatt(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>): { a: number; b: number } {
  if (scores.length !== labels.length || scores.length === 0) throw invalidArg('fitPlatt: needs as many labels as scores, and at least one')
  const s = Float64Array.from(scores as ArrayLike<number>)
  if (s.some((x) => !Number.isFinite(x))) throw invalidArg('fitPlatt: scores must be finite numbers')
  const l = Uint8Array.from(labels as ArrayLike<number>, (x) => (x ? 1 : 0))
  try {
    const [a, b] = native.fitPlatt(s, l)
    return { a, b }
  } catch (e) {
    throw fromNative(e)
  }
}
