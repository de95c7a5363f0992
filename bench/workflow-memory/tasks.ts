/**
 * The workflow-memory tasks, in a module of their own: workers import it to find the apps, so it
 * loads nothing but tsflow, tsflow/proxy and node:crypto.
 *
 * Every task resolves its inputs (the worker resolves proxy arguments before the call; here each
 * input is also read), sleeps, makes its output data of the stage's size and returns it: the bytes
 * themselves (mode none) or a proxy of them in the inputs' store (the proxy modes).
 */
import { randomFillSync } from 'node:crypto'
import { app } from 'tsflow'
import { factoryOf, isProxy, isResolved, Store } from 'tsflow/proxy'

/** `bytes` of random data (the seed's randbytes) or of a constant (cheaper, same memory). */
export function makeData(bytes: number, fill: 'random' | 'zeros'): Uint8Array {
  const data = new Uint8Array(bytes)
  if (fill === 'random') {
    // randomFillSync takes at most 2^31 - 1 bytes per call.
    for (let offset = 0; offset < bytes; offset += 2 ** 30) randomFillSync(data, offset, Math.min(2 ** 30, bytes - offset))
  } else data.fill(1)
  return data
}

function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000))
}

/** Reads every input once (its length and a byte), so a lazily resolved input is really fetched. */
function touch(inputs: readonly Uint8Array[]): number {
  let sum = 0
  for (const input of inputs) {
    if (typeof input?.byteLength !== 'number') throw new TypeError(`a task input is not bytes: ${Object.prototype.toString.call(input)}`)
    sum += input.byteLength + (input.byteLength > 0 ? input[0]! : 0)
  }
  return sum
}

/** Mode none: inputs and output travel through the executor as bytes. */
export const taskNoProxy = app(
  async function workflowMemoryTask(outputBytes: number, sleepSeconds: number, fill: 'random' | 'zeros', ...inputs: Uint8Array[]) {
    touch(inputs)
    await sleep(sleepSeconds)
    return makeData(outputBytes, fill)
  },
  { name: 'workflowMemoryTask' },
)

/**
 * The proxy modes: the inputs arrive as proxies the worker resolved before the call; the output is
 * stored in the same store (rebuilt here from the proxy's factory) and returned as a proxy, which
 * travels back as its factory only.
 */
export const taskProxy = app(
  async function workflowMemoryProxyTask(outputBytes: number, sleepSeconds: number, fill: 'random' | 'zeros', ...inputs: Uint8Array[]) {
    for (const input of inputs) {
      if (!isProxy(input)) throw new TypeError('workflowMemoryProxyTask: an input is not a proxy')
      if (!isResolved(input)) throw new TypeError('workflowMemoryProxyTask: an input proxy was not resolved before the call')
    }
    touch(inputs)
    await sleep(sleepSeconds)
    const store = Store.fromConfig(factoryOf(inputs[0]).store)
    return store.proxy(makeData(outputBytes, fill))
  },
  { name: 'workflowMemoryProxyTask' },
)

/** Makes the workers start (and import this module) before the first measured run. */
export const warmUp = app(function workflowMemoryWarmUp(index: number) {
  return index
})
