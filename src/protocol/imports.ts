/**
 * Proxy imports (docs/proxy-imports.md): what travels with an app's function so that the worker
 * can load the npm packages the app needs from a node-local copy instead of its own file system.
 *
 * The manifest rides on the function's descriptor (serialize/function-ref.ts, field `im`), which
 * the high-throughput executor sends once per function, not once per task. It names each packed
 * package by its content hash and the store key of its bytes (a proxy's factory, in effect): the
 * bytes themselves are fetched from the store by the first task on a node that imports them.
 */

/** One package shipped with an app's tasks. */
export interface ShippedPackageWire {
  /** the package name, e.g. 'mathjs' or '@scope/name' */
  name: string
  version?: string
  /**
   * sha256 (hex) of the packed tar: names the package's directory in a node's cache, so an
   * unchanged package is unpacked once per node and reused by later tasks and runs
   */
  hash: string
  /** the store key of the packed bytes (an ObjectKey of the manifest's store) */
  key: Record<string, unknown>
  /** bytes of the packed tar */
  size: number
  /**
   * the packages this one imports, by the name it imports them under: name -> hash of the
   * shipped package Node would find for that name from this package's directory (so two
   * versions of one package in a tree each resolve as they do in the workflow's install)
   */
  deps: Record<string, string>
  /** it holds compiled addons (`.node` files), which only load on a matching platform */
  native?: boolean
}

export interface ImportsWire {
  /** the store the packed packages are in (a StoreConfig, proxy/store.ts) */
  store: { name: string; [field: string]: unknown }
  /** every package shipped for this function, dependencies included, each once */
  packages: ShippedPackageWire[]
  /** the packages the app's own module (or its `modules` list) imports: name -> hash */
  roots: Record<string, string>
  /**
   * the node-local cache directory; `{block}` and `{host}` are replaced where the task runs by
   * its block id and host name. Absent: the default (under /dev/shm when present, else the
   * temporary directory).
   */
  cacheDir?: string
}

/** The placeholders a cacheDir may hold, replaced where tasks run. */
export const CACHE_DIR_PLACEHOLDERS = ['{block}', '{host}'] as const
