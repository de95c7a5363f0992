// Apps of the dashboard's browser test, in a module of their own so worker threads can import it.
import { existsSync } from 'node:fs'
import { app } from 'tsflow'

export const quick = app(async function quick(ms: number) {
  await new Promise((resolve) => setTimeout(resolve, ms))
  return ms
})

/** Runs until `gate` exists: the test decides when these tasks end. */
export const gated = app(async function gated(gate: string) {
  while (!existsSync(gate)) await new Promise((resolve) => setTimeout(resolve, 20))
  return gate
})

function dashboardBrokenInner(label: string): never {
  throw new Error(`dashboard test failure ${label}`)
}
/** Fails with an error whose stack names the worker-side function that threw. */
export const broken = app(function broken(label: string) {
  return dashboardBrokenInner(label)
})
