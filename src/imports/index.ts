// tsflow/imports: proxy imports (issue 9, in progress). Loaded by remote processes too: no kernel imports.
export { bareSpecifiersOf, findPackageRoot, packageNameOf, traceImports, tracePackages, type TraceOptions, type TracedImports, type TracedPackage } from './trace.js'
