// tsflow/imports: proxy imports (issue 9, in progress). Loaded by remote processes too: no kernel imports.
export { bareSpecifiersOf, findPackageRoot, packageNameOf, tracePackages, type TraceOptions, type TracedPackage } from './trace.js'
export { activateImports, importFailure, REQUIRE_WAIT_MS, type ActivateOptions } from './loader.js'
