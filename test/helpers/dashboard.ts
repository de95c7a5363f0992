// The dashboard's browser tests: `tsflow monitor <db>` as a real process (its printed URL), and
// Debian's Chromium driven by playwright-core. Both are stopped by the test's teardown.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser } from 'playwright-core'
import type { Test } from 'tap'

const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url))
const TSFLOW_BIN = join(PROJECT_ROOT, 'dist', 'bin', 'tsflow.js')
export const CHROMIUM = process.env.TSFLOW_CHROMIUM ?? '/usr/bin/chromium'

/** Why the browser tests cannot run here (a sentence for a skip), or undefined when they can. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `chromium is not installed at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`
}

/** Starts `tsflow monitor <db> --port 0` and resolves with the URL it prints; killed at teardown. */
export async function startMonitor(t: Test, db: string): Promise<string> {
  const child = spawn(process.execPath, [TSFLOW_BIN, 'monitor', db, '--port', '0'], {
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  })
  let out = ''
  let err = ''
  child.stderr!.on('data', (chunk) => (err += chunk))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tsflow monitor printed no URL in 30 s; stdout: ${out} stderr: ${err}`)), 30_000)
    child.stdout!.on('data', (chunk) => {
      out += chunk
      const m = /tsflow monitor: (http:\/\/\S+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1]!)
      }
    })
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`tsflow monitor exited (${child.exitCode ?? child.signalCode}); stderr: ${err}`))
    })
  })
}

/** Headless Chromium (no sandbox as root, which it refuses otherwise); closed at teardown. */
export async function launchChromium(t: Test): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] })
  t.teardown(() => browser.close())
  return browser
}
