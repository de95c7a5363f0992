/**
 * The app tsflow-perf measures. Workers import this module by reference to find it, so it must
 * stay free of side effects beyond defining it: no kernel, no I/O, no flags parsed.
 */
import { app } from '../app/app.js'
import type { AppDefinition } from '../dataflow/app-definition.js'

/** What the no-op task returns, checked on the workflow side like parsl-perf's `7`. */
export const NOOP_RESULT = 7
export const NOOP_APP_NAME = 'tsflow_perf_noop'

/** The measured task: takes the payload (so its bytes travel) and does nothing with it. */
export function tsflow_perf_noop(_payload: Uint8Array): number {
  return NOOP_RESULT
}

// Defined like any user's top-level app, so it travels by reference: the path worth measuring.
const noop = app(tsflow_perf_noop, { name: NOOP_APP_NAME, transport: 'reference' })

/** The definition the kernel submits. */
export const noopApp: AppDefinition = noop.definition
