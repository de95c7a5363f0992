// The benchmarks' network file system (bench/lib/network-fs.ts), root only: a directory served by
// a fake host is mounted read-only, read through the mount, and everything is gone after unmount.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { isMountPoint, mountNetworkFs, networkFsUnavailable } from '../../bench/lib/network-fs.js'

const why = networkFsUnavailable()
if (why) {
  t.test('network file system', { skip: `skipped: the sshfs fallback ${why} (CI installs sshfs and openssh-server and runs it as root)` }, () => {})
} else {
  const exportDir = mkdtempSync(join(tmpdir(), 'tsflow-netfs-export-'))
  t.teardown(() => rmSync(exportDir, { recursive: true, force: true }))
  writeFileSync(join(exportDir, 'hello.txt'), 'over the wire\n')

  for (const rttMs of [0, 20]) {
    t.test(`a served directory is mounted and read through the link (added round trip ${rttMs} ms)`, async (t) => {
      const fs = await mountNetworkFs({ exportDir, rttMs })
      t.teardown(() => fs.unmount())
      t.ok(isMountPoint(fs.mountPoint), 'mounted')
      t.not(fs.mountPoint, exportDir)
      t.equal(readFileSync(join(fs.mountPoint, 'hello.txt'), 'utf8'), 'over the wire\n')
      t.ok(['nfs', 'sshfs'].includes(fs.kind))
      if (rttMs > 0) t.ok(fs.latencyBy, 'the round trip was added')
      if (fs.kind === 'sshfs') t.match(fs.notes.join('\n'), /^NFS: ./, 'why NFS was not used is kept')
      const sshfs = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(fs.mountPoint))
      if (fs.kind === 'sshfs') t.equal(sshfs.length, 1, 'one sshfs process serves the mount')
      t.throws(() => writeFileSync(join(fs.mountPoint, 'new.txt'), 'x'), 'the mount is read-only')
      fs.unmount()
      fs.unmount() // twice is fine
      t.notOk(isMountPoint(fs.mountPoint), 'unmounted')
      t.notOk(existsSync(fs.mountPoint), 'the mount point is removed')
      t.same(readdirSync(exportDir), ['hello.txt'], 'the exported files are untouched')
      const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      t.notMatch(names, new RegExp(`^${fs.server.name}\\b`, 'm'), 'the file server host is gone')
      t.notOk(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).includes(fs.mountPoint), 'no process serves the mount any more')
    })
  }
}
