// Vendors the CRD schemas that deploy/ validates against (__test__/deploy.test.ts):
// KServe's ClusterServingRuntime and InferenceService, KEDA's ScaledObject and
// the Prometheus Operator's PodMonitor.
// They come from the projects' tagged sources as the Go module proxy serves
// them (a registry this project reaches), checked against pinned sha256 sums,
// and are written as the served versions' openAPIV3Schema in JSON, with the
// projects' licences, under deploy/schemas/<project>-<version>/.
//
// Usage: node scripts/vendor-crds.mjs   (needs network; the output is committed)
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { parse } from 'yaml'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const SOURCES = [
  {
    project: 'kserve',
    module: 'github.com/kserve/kserve',
    version: 'v0.15.2',
    sha256: '8a9a77411b468f2af8b1b50789df45724d1f1aae6a4cf90943867675c66677ae',
    crds: ['config/crd/full/serving.kserve.io_clusterservingruntimes.yaml', 'config/crd/full/serving.kserve.io_inferenceservices.yaml'],
  },
  {
    project: 'keda',
    module: 'github.com/kedacore/keda/v2',
    version: 'v2.17.2',
    sha256: 'f05536b67edf5fd898683586b91b55b136183b73cf9ddd26a2b5cda741e2e56d',
    crds: ['config/crd/bases/keda.sh_scaledobjects.yaml'],
  },
  {
    project: 'prometheus-operator',
    module: 'github.com/prometheus-operator/prometheus-operator',
    version: 'v0.83.0',
    sha256: 'e20d9831b302afedeee2e4a76130b3e9c252e254880bc0a965d16d2408dd53da',
    crds: ['example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml'],
  },
]

const tmp = mkdtempSync(join(tmpdir(), 'oxinfer-crds-'))
try {
  for (const s of SOURCES) {
    const url = `https://proxy.golang.org/${s.module}/@v/${s.version}.zip`
    const res = await fetch(url)
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`)
    const zip = Buffer.from(await res.arrayBuffer())
    const sum = createHash('sha256').update(zip).digest('hex')
    if (sum !== s.sha256) throw new Error(`${url}: sha256 ${sum}, expected ${s.sha256}`)
    const zipPath = join(tmp, `${s.project}.zip`)
    writeFileSync(zipPath, zip)
    const prefix = `${s.module}@${s.version}`
    const out = join(root, 'deploy', 'schemas', `${s.project}-${s.version}`)
    rmSync(out, { recursive: true, force: true })
    mkdirSync(out, { recursive: true })
    const read = (path) => execFileSync('unzip', ['-p', zipPath, `${prefix}/${path}`], { maxBuffer: 64 << 20 })
    writeFileSync(join(out, 'LICENSE'), read('LICENSE'))
    for (const crd of s.crds) {
      const doc = parse(read(crd).toString('utf8'))
      const { group, names } = doc.spec
      for (const v of doc.spec.versions) {
        if (!v.served) continue
        const file = `${names.singular}.${v.name}.json`
        const body = { apiVersion: `${group}/${v.name}`, kind: names.kind, source: `${url} (${crd})`, schema: v.schema.openAPIV3Schema }
        writeFileSync(join(out, file), JSON.stringify(body) + '\n')
        console.log(`vendor-crds: ${s.project}-${s.version}/${file}`)
      }
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true })
}
