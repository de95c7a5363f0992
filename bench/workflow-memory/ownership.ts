/**
 * owned-proxy mode: the ownership API of tsflow/proxy (issue 8 item 4), looked up at run time so
 * this bench builds against a tsflow without it and says clearly what is missing.
 */
import * as proxyModule from 'tsflow/proxy'
import type { Store } from 'tsflow/proxy'
import { BenchUsage } from '../lib/args.js'

export interface Ownership {
  /** a new owned proxy of `value` in `store` */
  owned(store: Store, value: Uint8Array): Promise<unknown>
  /** a shared (read-only) reference to an owned proxy, for one task */
  borrow(owned: unknown): unknown
  /** takes a plain proxy a task returned into ownership */
  intoOwned(proxy: unknown): unknown
  /** drops an owned proxy: its object is evicted */
  dispose(owned: unknown): Promise<void>
}

export const OWNERSHIP_MISSING = "owned-proxy needs tsflow's ownership API (OwnedProxy, borrow, intoOwned, dispose; issue 8 item 4), which this tsflow build does not have"

export function ownership(): Ownership {
  const api = proxyModule as unknown as Record<string, unknown>
  const borrow = api.borrow as ((owned: unknown) => unknown) | undefined
  const intoOwned = api.intoOwned as ((proxy: unknown) => unknown) | undefined
  const ownedProxy = (api.Store as { prototype: Record<string, unknown> } | undefined)?.prototype?.ownedProxy as ((this: Store, value: unknown) => Promise<unknown>) | undefined
  if (typeof borrow !== 'function' || typeof intoOwned !== 'function' || typeof ownedProxy !== 'function') throw new BenchUsage(OWNERSHIP_MISSING)
  return {
    owned: (store, value) => ownedProxy.call(store, value),
    borrow,
    intoOwned,
    async dispose(owned) {
      const target = owned as { [Symbol.dispose]?: () => void; [Symbol.asyncDispose]?: () => Promise<void> }
      if (typeof target[Symbol.asyncDispose] === 'function') await target[Symbol.asyncDispose]!()
      else target[Symbol.dispose]?.()
    },
  }
}
