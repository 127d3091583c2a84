// @oxinfer/torch: where the TorchScript backend's plugin library is, and the
// search for the libtorch it runs on. The oxinfer addon loads both the first
// time a TorchScript model is used; nothing here runs at install.
'use strict'
const { existsSync } = require('node:fs')
const { join } = require('node:path')
const { findLibtorch, install, LIBTORCH_VERSION } = require('./libtorch')

/** The plugin library for this platform, by `${process.platform}-${process.arch}`. */
const FILES = { 'linux-x64': 'oxinfer-torch.linux-x64-gnu.so' }

/** The plugin library's path, or undefined when this platform has none (or it was not built). */
function pluginPath() {
  const file = FILES[`${process.platform}-${process.arch}`]
  if (!file) return undefined
  const path = join(__dirname, file)
  return existsSync(path) ? path : undefined
}

module.exports = { pluginPath, findLibtorch, install, LIBTORCH_VERSION }
