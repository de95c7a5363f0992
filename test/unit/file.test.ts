import t from 'tap'
import { mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { File } from '../../dist/data/file.js'

t.test('a relative path resolves to an absolute file URL', async (t) => {
  const file = new File('out/result.txt')
  const absolute = resolve('out/result.txt')
  t.equal(file.scheme, 'file')
  t.equal(file.url, pathToFileURL(absolute).href)
  t.match(file.url, /^file:\/\/\//)
  t.equal(file.path, absolute)
  t.equal(String(file), absolute, 'String(file) is the path')
  t.equal(`${file}`, absolute, 'template literals give the path')
  t.equal(file.filename, 'result.txt')

  t.equal(new File('./a/../b/./c.txt').path, resolve('b/c.txt'), 'the path is normalized')
  t.equal(new File('plain.txt').path, resolve('plain.txt'))
})

t.test('a relative path is resolved when the File is made, not when it is used', async (t) => {
  const original = process.cwd()
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'tsflow-file-')))
  t.teardown(() => {
    process.chdir(original)
    rmSync(dir, { recursive: true, force: true })
  })
  process.chdir(dir)
  const file = new File('data/in.csv')
  process.chdir(original)
  t.equal(file.path, join(dir, 'data/in.csv'), 'the path keeps the directory it was made in')
  t.equal(String(file), join(dir, 'data/in.csv'))
})

t.test('absolute paths, URLs and special characters', async (t) => {
  const spaced = new File('/data/my results/run 1.txt')
  t.equal(spaced.url, 'file:///data/my%20results/run%201.txt', 'the URL is percent-encoded')
  t.equal(spaced.path, '/data/my results/run 1.txt', 'the path is not')
  t.equal(spaced.filename, 'run 1.txt', 'the filename is decoded')

  const odd = '/data/100% done #1 ?.txt'
  const oddFile = new File(odd)
  t.equal(oddFile.path, odd, '%, # and ? survive the round trip through the URL')
  t.equal(oddFile.filename, '100% done #1 ?.txt')
  t.equal(new File(oddFile.url).path, odd, 'a File made from the URL is the same file')

  const unicode = new File('/data/naïve/résumé ✓.txt')
  t.equal(unicode.path, '/data/naïve/résumé ✓.txt')
  t.equal(unicode.filename, 'résumé ✓.txt')

  const fromUrlObject = new File(new URL('file:///tmp/x.txt'))
  t.equal(fromUrlObject.scheme, 'file')
  t.equal(fromUrlObject.path, '/tmp/x.txt')
  t.equal(fromUrlObject.url, 'file:///tmp/x.txt')

  const fromFileUrlString = new File('file:///tmp/y.txt')
  t.equal(fromFileUrlString.scheme, 'file')
  t.equal(fromFileUrlString.path, '/tmp/y.txt')
  t.equal(String(fromFileUrlString), '/tmp/y.txt')

  t.equal(new File('/tmp/dir/').filename, 'dir', 'a trailing slash on a path is dropped')
})

t.test('non-file schemes keep the URL', async (t) => {
  const remote = new File('https://example.org/data/input.csv')
  t.equal(remote.scheme, 'https')
  t.equal(remote.url, 'https://example.org/data/input.csv')
  t.equal(String(remote), 'https://example.org/data/input.csv', 'String(file) is the URL')
  t.equal(remote.filename, 'input.csv')
  t.throws(() => remote.path, TypeError, 'path throws')
  t.throws(
    () => remote.path,
    { message: "File https://example.org/data/input.csv has scheme 'https', which has no local path" },
    'the error names the URL and the scheme',
  )

  const s3 = new File('s3://bucket/key/obj.parquet')
  t.equal(s3.scheme, 's3')
  t.equal(s3.filename, 'obj.parquet')
  t.throws(() => s3.path, /scheme 's3'/)

  const globus = new File('globus://endpoint-id/path/to/file.h5')
  t.equal(globus.scheme, 'globus')
  t.equal(globus.filename, 'file.h5')

  t.equal(new File('HTTPS://Example.org/a').scheme, 'https', 'the scheme is lower-cased')
  t.equal(new File('HTTPS://Example.org/a').url, 'HTTPS://Example.org/a', 'the URL is kept as given')
  t.equal(new File('git+ssh://host/repo.git').scheme, 'git+ssh', 'schemes with + . - are recognized')
})

t.test('filename of a URL with a query or fragment', async (t) => {
  t.equal(new File('https://example.org/data.csv?token=abc').filename, 'data.csv', 'query string is not part of the name')
  t.equal(new File('file:///tmp/a.txt#section').filename, 'a.txt', 'fragment is not part of the name')
  let name: unknown
  try {
    name = new File('https://example.org/100%').filename
  } catch (error) {
    name = error
  }
  t.equal(name, '100%', 'a stray % does not throw')
})

t.test('invalid locations', async (t) => {
  t.throws(() => new File(''), TypeError)
  t.throws(() => new File(''), /File needs a non-empty path or URL, e\.g\. new File\("out\/result\.txt"\)/, 'the message gives an example')
  for (const bad of [undefined, null, 42, {}, ['a']]) {
    t.throws(() => new File(bad as unknown as string), TypeError, `${JSON.stringify(bad)} is rejected`)
  }
})

t.test('toJSON', async (t) => {
  const file = new File('/data/a.txt')
  t.same(file.toJSON(), { url: 'file:///data/a.txt' })
  t.equal(JSON.stringify({ input: file }), '{"input":{"url":"file:///data/a.txt"}}')
})
