// An endpoint's key pairs, its allow-list, and the client's key pair (src/endpoint/keys.ts).
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import t, { type Test } from 'tap'
import { curveKeyPair } from 'zeromq'

import {
  addAllowedClient,
  ensureClientKeys,
  ensureEndpointKeys,
  isCurveKey,
  readAllowedClients,
  removeAllowedClient,
} from '../../dist/endpoint/keys.js'
import { ConfigError } from '../../dist/errors.js'
import { endpointPaths } from '../../dist/protocol/endpoint.js'

function home(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-keys-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('endpoint keys are made once, 0600 in a 0700 directory, and kept across calls', async (t) => {
  const paths = endpointPaths('ep1', home(t))
  const first = ensureEndpointKeys(paths)
  t.ok(isCurveKey(first.server.publicKey) && isCurveKey(first.server.secretKey))
  t.equal(first.server.clientPublicKey, first.managers.publicKey, 'the server admits the managers key')
  t.equal(first.managers.serverPublicKey, first.server.publicKey)
  t.not(first.server.publicKey, first.managers.publicKey)
  t.equal(statSync(paths.curveDir).mode & 0o777, 0o700)
  for (const name of ['server.public', 'server.secret', 'client.public', 'client.secret']) {
    t.equal(statSync(join(paths.curveDir, name)).mode & 0o777, 0o600, `${name} is 0600`)
  }
  const again = ensureEndpointKeys(paths)
  t.same(again, first, 'a restart keeps the keys clients were given')

  // Half a pair is refused, not replaced (clients hold the public key).
  unlinkSync(join(paths.curveDir, 'server.secret'))
  t.throws(() => ensureEndpointKeys(paths), { name: 'ConfigError', message: /server\.secret is missing but its pair's other half exists/ })
})

t.test('a readable secret key is refused with the chmod to run', async (t) => {
  const paths = endpointPaths('ep2', home(t))
  ensureEndpointKeys(paths)
  chmodSync(join(paths.curveDir, 'server.secret'), 0o644)
  t.throws(() => ensureEndpointKeys(paths), { message: /server\.secret is a CURVE secret key other users can access .*chmod 600/ })
})

t.test('allow-list: add, read, remove; comments and labels kept; duplicates ignored', async (t) => {
  const paths = endpointPaths('ep3', home(t))
  t.same(readAllowedClients(paths), [], 'no file: nobody')
  const a = curveKeyPair().publicKey
  const b = curveKeyPair().publicKey
  t.equal(addAllowedClient(paths, a, 'alice laptop'), true)
  t.equal(addAllowedClient(paths, `  ${b}\n`), true, 'whitespace around a pasted key is fine')
  t.equal(addAllowedClient(paths, a), false, 'already there')
  t.same(readAllowedClients(paths), [a, b])
  const text = readFileSync(paths.allowedClients, 'utf8')
  t.match(text, /^# client public keys/, 'a header comment explains the file')
  t.match(text, `${a} # alice laptop\n`)
  t.equal(statSync(paths.allowedClients).mode & 0o777, 0o600)

  t.equal(removeAllowedClient(paths, a), true)
  t.equal(removeAllowedClient(paths, a), false, 'already gone')
  t.same(readAllowedClients(paths), [b])
  t.match(readFileSync(paths.allowedClients, 'utf8'), /^# client public keys/, 'comments survive a removal')

  t.throws(() => addAllowedClient(paths, 'not-a-key'), { name: 'ConfigError', message: /"not-a-key" is not a client public key \(40 z85 characters/ })
})

t.test('a bad allow-list line is an error naming the file and line', async (t) => {
  const paths = endpointPaths('ep4', home(t))
  const good = curveKeyPair().publicKey
  // 40 characters of the alphabet but a group past 2^32 - 1 ('%' leads, 84s follow) is no key either.
  const overflow = '%####'.repeat(8)
  t.equal(isCurveKey(overflow), false)
  mkdirSync(paths.dir, { recursive: true })
  writeFileSync(paths.allowedClients, `# team\n${good} # bob\n\n${good.slice(0, 39)}\n`)
  const error = t.throws(() => readAllowedClients(paths)) as unknown as ConfigError
  t.ok(error instanceof ConfigError)
  t.match(error.message, `${paths.allowedClients}:4 is not a client public key`)
  writeFileSync(paths.allowedClients, `${good}\n${overflow}\n`)
  t.throws(() => readAllowedClients(paths), { message: `${paths.allowedClients}:2 is not a client public key` })
  writeFileSync(paths.allowedClients, `${good} trailing words\n`)
  t.throws(() => readAllowedClients(paths), { message: `${paths.allowedClients}:1 is not a client public key` }, 'text after a key must be a # label')
})

t.test('the client key pair is made on first use (0600) and reused', async (t) => {
  const dir = home(t)
  const first = ensureClientKeys(dir)
  t.ok(isCurveKey(first.publicKey) && isCurveKey(first.secretKey))
  t.equal(statSync(join(dir, 'client')).mode & 0o777, 0o700)
  t.equal(statSync(join(dir, 'client', 'client.secret')).mode & 0o777, 0o600)
  t.equal(statSync(join(dir, 'client', 'client.public')).mode & 0o777, 0o600)
  t.same(ensureClientKeys(dir), first)
  // The default home comes from TSFLOW_HOME.
  const saved = process.env.TSFLOW_HOME
  process.env.TSFLOW_HOME = dir
  t.teardown(() => {
    if (saved === undefined) delete process.env.TSFLOW_HOME
    else process.env.TSFLOW_HOME = saved
  })
  t.same(ensureClientKeys(), first, 'TSFLOW_HOME is the default home')
})
