// The value layout (src/ddict/values.ts) without a server: views when aligned, one copy when not.
import t from 'tap'
import { decodeValue, encodeValue } from '../../../dist/ddict/values.js'

t.test('typed arrays come back as views of an aligned reply, as copies of a misaligned one', async (t) => {
  const value = Float64Array.from([1.5, -2.25, 3])
  const stored = encodeValue(value)
  t.equal(stored.length, 8 + 24)
  t.same([stored[0], stored[1]], [0x02, 8], 'tag typed, kind Float64Array')

  const aligned = Buffer.from(new ArrayBuffer(64), 0, stored.length)
  stored.copy(aligned)
  const view = decodeValue(aligned) as Float64Array
  t.same(Array.from(view), [1.5, -2.25, 3])
  t.equal(view.buffer, aligned.buffer, 'aligned: a view of the reply, no copy')
  t.equal(view.byteOffset, 8)

  const misaligned = Buffer.from(new ArrayBuffer(64), 3, stored.length)
  stored.copy(misaligned)
  const copy = decodeValue(misaligned) as Float64Array
  t.same(Array.from(copy), [1.5, -2.25, 3])
  t.not(copy.buffer, misaligned.buffer, 'misaligned: one copy')

  const bytes = decodeValue(encodeValue(Buffer.from('abc'))) as Buffer
  t.ok(Buffer.isBuffer(bytes))
  t.equal(bytes.toString(), 'abc')
})

t.test('integers are ASCII, other values the codec after a tag', async (t) => {
  t.equal(encodeValue(-42).toString(), '-42')
  t.equal(decodeValue(Buffer.from('-42')), -42)
  t.equal(encodeValue(2 ** 53).readUInt8(0), 0x10, 'an unsafe integer goes through the codec')
  t.equal(decodeValue(encodeValue(2 ** 53)), 2 ** 53)
  t.same(decodeValue(encodeValue({ a: [1n, new Set([1])] })), { a: [1n, new Set([1])] })
  t.throws(() => decodeValue(Buffer.from('xyz')), /no known value tag/)
  t.throws(() => decodeValue(Buffer.alloc(0)), /0 bytes/)
})
