#!/usr/bin/env node
// Installs libtorch 2.11 for @oxinfer/torch from PyPI into ~/.cache/oxinfer
// (python3 with pip needed; about 1.3 GB on disk) and prints its folder.
'use strict'
const { install } = require('../libtorch')

try {
  process.stdout.write(`${install()}\n`)
} catch (e) {
  process.stderr.write(`oxinfer-torch-install: ${e.message}\n`)
  process.exitCode = 1
}
