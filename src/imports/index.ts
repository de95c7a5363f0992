// tsflow/imports: proxy imports (issue 9, in progress). Loaded by remote processes too: no kernel imports.
export { bareSpecifiersOf, findPackageRoot, packageNameOf, tracePackages, type TraceOptions, type TracedPackage } from './trace.js'
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
