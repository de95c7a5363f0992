// config.json of an endpoint (src/endpoint/config.ts): defaults, and errors naming the file and field.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'

import t from 'tap'

import { loadEndpointConfig, resolveEndpointConfig, writeDefaultEndpointConfig, DEFAULT_ENDPOINT_CONFIG, EndpointServer } from 'tsflow/endpoint'
import { ENDPOINT_DEFAULTS, endpointPaths } from 'tsflow/protocol'
import { tempHome } from './harness.js'

t.test('the default config.json: written atomically, read back with the defaults', async (t) => {
  const paths = endpointPaths('cfg', tempHome(t))
  const written = writeDefaultEndpointConfig(paths, { maxWorkersPerNode: 3, clientPort: 55001 })
  t.same(JSON.parse(readFileSync(paths.config, 'utf8')), written)
  t.equal(written.maxWorkersPerNode, 3)
  t.same(written.provider, DEFAULT_ENDPOINT_CONFIG.provider)
  const config = loadEndpointConfig(paths)
  t.ok(Object.isFrozen(config))
  t.equal(config.file, paths.config)
  t.equal(config.clientPort, 55001)
  t.equal(config.clientAddress, '127.0.0.1')
  t.equal(config.resultTtlMs, ENDPOINT_DEFAULTS.resultTtlMs)
  t.equal(config.maxRetainedBytesPerSession, ENDPOINT_DEFAULTS.maxRetainedBytesPerSession)
  t.equal(config.htex.encrypted, true, 'an endpoint always encrypts')
  t.equal(config.htex.maxWorkersPerNode, 3)
  t.equal(config.htex.provider.label, 'local')
  t.equal(config.htex.provider.minBlocks, 1)
  // A bad override never lands in the file.
  t.throws(() => writeDefaultEndpointConfig(paths, { maxWorkersPerNode: -1 }), { message: `${paths.config}: maxWorkersPerNode must be` })
  t.equal(JSON.parse(readFileSync(paths.config, 'utf8')).maxWorkersPerNode, 3)
})

t.test('errors name the file and the field path, with did-you-mean', async (t) => {
  const paths = endpointPaths('bad', tempHome(t))
  mkdirSync(paths.dir, { recursive: true })
  const cases: [unknown, RegExp | string][] = [
    [{ provider: { type: 'locl' } }, `${paths.config}: provider.type must be one of`],
    [{ provider: { type: 'locl' } }, /did you mean 'local'\?/],
    [{ provider: { type: 'local', maxBlocks: 0 } }, `${paths.config}: provider.maxBlocks`],
    [{ resultTtl: 5 }, `${paths.config}: resultTtl is not a known option; did you mean 'resultTtlMs'?`],
    [{ maxWorkers: 2 }, `${paths.config}: maxWorkers is not a known option; did you mean 'maxWorkersPerNode'?`],
    [{ heartbeatPeriodMs: 2000, heartbeatThresholdMs: 1000 }, `${paths.config}: heartbeatThresholdMs (1000 ms) must be longer than the heartbeat period`],
    [{ clientPort: 70000 }, `${paths.config}: clientPort must be a port number from 0 to 65535`],
    [{ clientAddress: '10.255.255.254' }, `${paths.config}: clientAddress is 10.255.255.254, which is not an address of any interface of this host`],
    [{ workerMode: 'fibers' }, `${paths.config}: workerMode must be`],
    [{ proxy: {} }, `${paths.config}: proxy is not an endpoint option: it is a client option: set it on the EndpointExecutor`],
    [{ encrypted: false }, `${paths.config}: encrypted is not an endpoint option: an endpoint always encrypts`],
    [[1, 2], `${paths.config}: must hold a JSON object (got an array)`],
  ]
  for (const [raw, expected] of cases) {
    writeFileSync(paths.config, JSON.stringify(raw))
    t.throws(() => loadEndpointConfig(paths), { name: 'ConfigError', message: expected }, JSON.stringify(raw))
  }
  writeFileSync(paths.config, '{ "provider": ')
  t.throws(() => loadEndpointConfig(paths), { message: new RegExp(`^${paths.config.replace(/[.]/g, '\\.')}: is not valid JSON`) })
  t.throws(() => loadEndpointConfig(endpointPaths('none', tempHome(t)), 'none'), { message: /config\.json does not exist; run 'npx tsflow endpoint configure none'/ })
  // The server reads it at construction: a bad config stops it before anything starts.
  writeFileSync(paths.config, JSON.stringify({ strategy: 'simpel' }))
  t.throws(() => new EndpointServer({ name: 'bad', home: paths.dir.replace(/\/endpoints\/bad$/, '') }), { message: `${paths.config}: strategy must be one of` })
  t.throws(() => resolveEndpointConfig({ logLevel: 'loud' }, 'X'), { message: "X: logLevel must be one of 'error', 'warn', 'info', 'debug'" })
})
