/**
 * owned-proxy mode: the ownership API (tsflow/proxy `ownedProxy`, `borrow`, `intoOwned`,
 * `dispose`; tsflow `submitScoped`), looked up at run time so this bench also builds and runs
 * the other modes against a tsflow without it, and says clearly what is missing.
 */
import * as core from 'tsflow'
import * as proxyModule from 'tsflow/proxy'
import type { Store } from 'tsflow/proxy'
import { BenchUsage } from '../lib/args.js'

export interface Ownership {
  /** a new owned proxy of `value` in `store` */
  owned(store: Store, value: Uint8Array): Promise<unknown>
  /** a shared (read-only) borrow of an owned proxy */
  borrow(owned: unknown): unknown
  /** calls `submit(...args)` and releases the borrows among `args` when its future settles */
  submitScoped<F extends PromiseLike<unknown>>(submit: (...args: unknown[]) => F, ...args: unknown[]): F
  /** takes a plain proxy a task returned into ownership */
  intoOwned(proxy: unknown): unknown
  /** drops an owned proxy: its object is evicted */
  dispose(owned: unknown): Promise<void>
}

export const OWNERSHIP_MISSING = "owned-proxy needs tsflow's ownership API (ownedProxy, borrow, intoOwned, dispose, submitScoped; issue 8 item 4), which this tsflow build does not have"

type Fn = (...args: unknown[]) => unknown

export function ownership(): Ownership {
  const api = proxyModule as unknown as Record<string, Fn | undefined>
  const scoped = (core as unknown as Record<string, Fn | undefined>).submitScoped
  const { ownedProxy, borrow, intoOwned, dispose } = api
  if (!ownedProxy || !borrow || !intoOwned || !dispose || !scoped) throw new BenchUsage(OWNERSHIP_MISSING)
  return {
    owned: (store, value) => ownedProxy(store, value) as Promise<unknown>,
    borrow: (owned) => borrow(owned),
    submitScoped: (submit, ...args) => scoped(submit, ...args) as ReturnType<typeof submit>,
    intoOwned: (proxy) => intoOwned(proxy),
    dispose: async (owned) => {
      await dispose(owned)
    },
  }
}
