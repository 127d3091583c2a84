// ESM entry: re-exports the one CommonJS build, so classes keep one identity
// whichever way oxinfer is loaded.
import cjs from './index.js'

export const { OxinferError, Tensor, Session, configure, versions } = cjs
export default cjs
