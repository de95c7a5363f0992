// The DDict's own RESP2 client (src/ddict/resp-client.ts): its parser fed replies cut at every
// byte, then against real redis-servers: pipelining order, a 64 MiB value, nested and nil
// replies, error replies as the DDict's callers read them, pub/sub, a server SIGKILLed under
// load, AUTH. (Internal module: imported from the build under dist/, like values.test.ts.)
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { isReplyError } from '../../../dist/ddict/connection.js'
import { LARGE_BULK, ReplyError, RespClient, RespParser, RespTransportError, type RespValue } from '../../../dist/ddict/resp-client.js'
import { freePort, redisMissing, startRedis } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'

const skip = redisMissing() ?? false

/** Replies in a comparable form: errors as { error: message }, bulk strings as { bulk: text }. */
function plain(value: RespValue): unknown {
  if (value instanceof ReplyError) return { error: value.message }
  if (Buffer.isBuffer(value)) return { bulk: value.length > 64 ? `${value.length} bytes ${value.subarray(0, 8).toString('hex')}` : value.toString() }
  if (Array.isArray(value)) return value.map(plain)
  return value
}

function parseAll(chunks: Buffer[]): RespValue[] {
  const replies: RespValue[] = []
  const parser = new RespParser((reply) => replies.push(reply))
  for (const chunk of chunks) {
    parser.feed(chunk)
    chunk.fill(0x21) // the caller reuses its chunk: nothing may still point into it
  }
  return replies
}

const large = Buffer.alloc(LARGE_BULK + 5, 7)
const wire = Buffer.concat([
  Buffer.from('+OK\r\n-ERR bad thing\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n'),
  Buffer.from('*3\r\n*2\r\n$1\r\na\r\n$-1\r\n:1\r\n*1\r\n-WRONGTYPE nested\r\n+é\r\n'),
  Buffer.from(`$${large.length}\r\n`),
  large,
  Buffer.from('\r\n:9007199254740993\r\n'),
])
const expected = [
  'OK',
  { error: 'ERR bad thing' },
  42,
  -7,
  { bulk: 'hello' },
  { bulk: '' },
  null,
  null,
  [],
  [[{ bulk: 'a' }, null], 1, [{ error: 'WRONGTYPE nested' }]],
  'é',
  { bulk: `${large.length} bytes ${large.subarray(0, 8).toString('hex')}` },
  9007199254740992,
]

t.test('parser: one chunk, and cut in two at every byte', async (t) => {
  t.same(parseAll([Buffer.from(wire)]).map(plain), expected)
  const header = wire.length - large.length - 22
  let cuts = 0
  const wrong: number[] = []
  for (let at = 1; at < wire.length; at++) {
    // every byte of the small replies and of the large bulk's edges; a stride through its middle
    if (at > header + 64 && at < wire.length - 64 && at % 1021 !== 0) continue
    const replies = parseAll([Buffer.from(wire.subarray(0, at)), Buffer.from(wire.subarray(at))])
    if (JSON.stringify(replies.map(plain)) !== JSON.stringify(expected) || !(replies[11] as Buffer).equals(large)) wrong.push(at)
    cuts++
  }
  t.same(wrong, [], 'the same replies wherever the cut')
  t.ok(cuts > 200, `${cuts} cuts`)
})

t.test('parser: byte by byte; a large bulk is one exact buffer at byteOffset 0', async (t) => {
  const chunks = Array.from({ length: wire.length }, (_, i) => Buffer.from(wire.subarray(i, i + 1)))
  const replies = parseAll(chunks)
  t.same(replies.map(plain), expected)
  const bulk = replies[11] as Buffer
  t.equal(bulk.byteOffset, 0)
  t.equal(bulk.buffer.byteLength, large.length)
  t.ok(bulk.equals(large))
})

t.test('parser: a protocol error names what it found', async (t) => {
  t.throws(() => parseAll([Buffer.from('?what\r\n')]), /unknown reply type "\?"/)
  t.throws(() => parseAll([Buffer.from(':12x\r\n')]), /bad integer/)
})

async function client(t: Test, options: { host: string; port: number; password?: string }): Promise<RespClient> {
  const c = new RespClient({ connectTimeoutMs: 10_000, ...options })
  t.teardown(() => c.destroy('test over'))
  await c.ready
  return c
}

t.test('against a real redis-server', { skip }, async (t) => {
  const redis = await startRedis(t)

  t.test('pipelined mixed commands keep their order', async (t) => {
    const c = await client(t, redis)
    const calls: Promise<unknown>[] = []
    for (let i = 0; i < 2000; i++) {
      calls.push(c.sendCommand(['SET', `k${i}`, i % 2 ? Buffer.from(`v${i}`) : `v${i}`]))
      calls.push(c.sendCommand(['GET', `k${i}`]))
      calls.push(c.sendCommand(['INCR', 'counter']))
      if (i % 100 === 0) calls.push(c.sendCommand(['INCR', `k${i}`]).catch((error: Error) => error))
    }
    const replies = await Promise.all(calls)
    let at = 0
    let bad = 0
    for (let i = 0; i < 2000; i++) {
      if (replies[at++] !== 'OK') bad++
      if ((replies[at++] as Buffer).toString() !== `v${i}`) bad++
      if (replies[at++] !== i + 1) bad++
      if (i % 100 === 0 && !isReplyError(replies[at++])) bad++
    }
    t.equal(bad, 0, 'every reply in its place')
    t.equal(at, replies.length)
  })

  t.test('a 64 MiB value round trip', async (t) => {
    const c = await client(t, redis)
    const value = randomBytes(64 * 1024 * 1024)
    t.equal(await c.sendCommand(['SET', 'big', value]), 'OK')
    const [back, small, again] = await Promise.all([
      c.sendCommand<Buffer>(['GET', 'big']),
      c.sendCommand<Buffer>(['ECHO', 'after']),
      c.sendCommand<number>(['STRLEN', 'big']),
    ])
    t.equal(back.length, value.length)
    t.ok(back.equals(value), 'the same bytes')
    t.equal(back.byteOffset, 0, 'its own allocation: byteOffset 0')
    t.equal(small.toString(), 'after')
    t.equal(again, value.length)
    await c.sendCommand(['DEL', 'big'])
  })

  t.test('nested arrays and nil', async (t) => {
    const c = await client(t, redis)
    t.same(plain(await c.sendCommand(['EVAL', "return {1, {2, 'x', {}}, 'y'}", '0'])), [1, [2, { bulk: 'x' }, []], { bulk: 'y' }])
    t.same(plain(await c.sendCommand(['MGET', 'k1', 'missing', 'k2'])), [{ bulk: 'v1' }, null, { bulk: 'v2' }])
    t.equal(await c.sendCommand(['GET', 'missing']), null)
    t.equal(await c.sendCommand(['BLPOP', 'no-list', '0.01']), null, 'nil array')
  })

  t.test('error replies keep the server message, and the connection goes on', async (t) => {
    const c = await client(t, redis)
    await c.sendCommand(['SET', 's', 'text'])
    const wrongType = await c.sendCommand(['LPUSH', 's', 'x']).catch((error: unknown) => error)
    t.ok(isReplyError(wrongType))
    t.match((wrongType as Error).message, /^WRONGTYPE /)
    const noScript = await c.sendCommand(['EVALSHA', 'f'.repeat(40), '0']).catch((error: unknown) => error)
    t.match((noScript as Error).message, /^NOSCRIPT/)
    const frozen = await c.sendCommand(['EVAL', "return redis.error_reply('TSFLOW_FROZEN k')", '0']).catch((error: unknown) => error)
    t.ok(isReplyError(frozen))
    t.equal((frozen as Error).message, 'TSFLOW_FROZEN k')
    t.notOk(isReplyError(new RespTransportError('x')), 'a transport failure is not a reply error')
    t.equal(await c.sendCommand(['PING']), 'PONG')
  })

  t.test('pub/sub: subscribe, messages, subscribe mode, unsubscribe', async (t) => {
    const sub = await client(t, redis)
    const pub = await client(t, redis)
    const got: string[] = []
    await sub.subscribe('news', (message, channel) => got.push(`${channel}:${message.toString()}`))
    await sub.subscribe('other', () => got.push('other'))
    t.equal(await pub.sendCommand(['PUBLISH', 'news', 'one']), 1, 'the server confirmed the subscription before subscribe() resolved')
    await pub.sendCommand(['PUBLISH', 'news', 'two'])
    await waitFor(() => got.length === 2, 'two messages')
    t.same(got, ['news:one', 'news:two'])
    await t.rejects(sub.sendCommand(['GET', 'k1']), /subscribe mode/)
    await sub.unsubscribe('news')
    t.equal(await pub.sendCommand(['PUBLISH', 'news', 'three']), 0)
    await sub.unsubscribe('other')
    t.equal(await sub.sendCommand(['PING']), 'PONG', 'normal commands again')
  })

  t.test('AUTH', async (t) => {
    // (set after the start: the helper's readiness PING carries no password)
    const secured = await startRedis(t)
    const admin = await client(t, secured)
    t.equal(await admin.sendCommand(['CONFIG', 'SET', 'requirepass', 'right-one']), 'OK')
    const good = await client(t, { ...secured, password: 'right-one' })
    t.equal(await good.sendCommand(['PING']), 'PONG')
    const bad = new RespClient({ ...secured, password: 'wrong', connectTimeoutMs: 10_000 })
    t.teardown(() => bad.destroy())
    await t.rejects(bad.ready, /authentication failed at 127\.0\.0\.1:\d+ \(WRONGPASS.*requirepass/)
    t.equal(bad.isOpen, false)
    const none = await client(t, secured)
    await t.rejects(none.sendCommand(['GET', 'x']), /^NOAUTH/)
  })

  t.test('connect refused', async (t) => {
    const port = await freePort()
    const c = new RespClient({ host: '127.0.0.1', port, connectTimeoutMs: 10_000 })
    t.teardown(() => c.destroy())
    await t.rejects(c.ready, /ECONNREFUSED/)
    await t.rejects(c.sendCommand(['PING']), RespTransportError)
  })
})

t.test('a server SIGKILLed under load fails every pending command at once', { skip }, async (t) => {
  const redis = await startRedis(t)
  const c = await client(t, redis)
  let closed: string | undefined
  c.onClose = (cause) => (closed = cause)
  const value = Buffer.alloc(1024 * 1024, 3)
  await c.sendCommand(['SET', 'v', value])
  // 32 loops, each one command in flight at a time (a 1 MiB SET or GET), until the connection ends
  const outcomes: string[] = []
  let done = 0
  let failedAt = 0
  const loops = Array.from({ length: 32 }, async (_, i) => {
    for (;;) {
      try {
        await (i % 2 ? c.sendCommand(['GET', 'v']) : c.sendCommand(['SET', `v${i}`, value]))
        done++
      } catch (error) {
        failedAt = performance.now()
        outcomes.push(error instanceof RespTransportError ? 'transport' : `other: ${(error as Error).message}`)
        return
      }
    }
  })
  await waitFor(() => done >= 200, 'commands done under load')
  const killedAt = performance.now()
  process.kill(redis.pid, 'SIGKILL')
  await Promise.all(loops)
  await waitFor(() => closed !== undefined, 'the client saw the connection end', 5000)
  const elapsed = failedAt - killedAt
  t.ok(elapsed < 5000, `all 32 pending failed ${elapsed.toFixed(0)} ms after the kill`)
  t.same(outcomes, Array(32).fill('transport'), 'each with RespTransportError')
  t.equal(c.isOpen, false)
  await t.rejects(c.sendCommand(['PING']), RespTransportError, 'later commands fail at once')
})
