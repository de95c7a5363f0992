/** Per-task resource needs, for executors that place tasks on slots (travels on the task envelope). */
export interface ResourceSpec {
  cores?: number
  memoryMb?: number
  gpus?: number
}
