/**
 * Every built-in launcher, one module per family: local.ts (single_node, simple, wrapped),
 * slurm.ts (srun), mpi.ts (mpiexec, mpirun), cray.ts (aprun), lsf.ts (jsrun). Providers import
 * from here or from index.ts.
 */
export { SingleNodeLauncher, SimpleLauncher, WrappedLauncher, type WrappedLauncherOptions } from './local.js'
export { SrunLauncher, SRUN_RANKS, type SrunLauncherOptions } from './slurm.js'
export { MpiExecLauncher, MpiRunLauncher, MPI_RANKS, type MpiFlavor, type MpiExecLauncherOptions, type MpiRunLauncherOptions, type MpiLauncherOptions } from './mpi.js'
export { AprunLauncher, APRUN_RANKS, type AprunLauncherOptions } from './cray.js'
export { JsrunLauncher, JSRUN_RANKS, type JsrunLauncherOptions } from './lsf.js'
