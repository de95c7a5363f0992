// tsflow/imports: proxy imports (issue 9, in progress). Loaded by remote processes too: no kernel imports.
export { bareSpecifiersOf, findPackageRoot, packageNameOf, traceImports, tracePackages, type TraceOptions, type TracedImports, type TracedPackage, type UntracedImport } from './trace.js'
export {
  cleanPackCache,
  createPackMemo,
  defaultPackCacheDir,
  PACK_MTIME,
  PACKAGE_KEY_PREFIX,
  packageKey,
  PackMemo,
  packPackage,
  shipPackages,
  type CleanPackCacheOptions,
  type PackedPackage,
  type PackOptions,
  type ShipEvent,
  type ShipOptions,
} from './pack.js'
export { activateImports, importFailure, REQUIRE_WAIT_MS, type ActivateOptions } from './loader.js'
export {
  cleanImportsCache,
  DEFAULT_STALE_LOCK_MS,
  DEFAULT_UNPACK_TIMEOUT_MS,
  defaultCacheDir,
  ensureUnpacked,
  expandCacheDir,
  isUnpacked,
  packageDir,
  unlinkImportsCache,
  waitUnpackedSync,
  type CleanOptions,
  type UnpackOptions,
} from './unpack.js'
