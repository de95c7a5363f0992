/**
 * Preloaded (`--import`) into the worker threads and processes of a workflow that runs under
 * tsx, so they can import its TypeScript app modules (see exec-argv.ts).
 *
 * Why it exists: tsx's own `--import` entry registers its ESM hooks only in the main thread on
 * Node versions whose worker threads could not take hooks then (all of Node 20), so a piscina
 * thread or a manager's worker thread fails with `Unknown file extension ".ts"` although it
 * inherited `--import tsx`. In a thread this module registers tsx's ESM hooks unless a loader
 * is already active there (registering twice would compile every module twice); in a main
 * thread tsx's own flags, which come before this one, already did the work.
 */
import { isMainThread } from 'node:worker_threads'
import { typeScriptHooksActive } from './exec-argv.js'

if (!isMainThread && !typeScriptHooksActive()) {
  let register: () => unknown
  try {
    ;({ register } = await import('tsx/esm/api'))
  } catch (error) {
    throw new Error(
      `tsflow: this worker thread cannot load TypeScript: the tsx loader failed to load (${(error as Error)?.message ?? String(error)}); ` +
        'reinstall tsflow (tsx is one of its dependencies)',
    )
  }
  register()
}
