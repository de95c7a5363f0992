import type { Executor, ExecutorHost, ExecutorTask } from 'tsflow'

/** Completes every task in-process on the next microtask: measures the kernel alone. */
export class InlineExecutor implements Executor {
  readonly type = 'inline'
  readonly label = 'inline'
  outstanding = 0
  private host!: ExecutorHost
  validate(): void {}
  async start(host: ExecutorHost): Promise<void> {
    this.host = host
  }
  submit(task: ExecutorTask): void {
    this.outstanding++
    queueMicrotask(() => {
      this.outstanding--
      this.host.taskDone(task.id, task.try, { ok: true, value: task.args[0] })
    })
  }
  cancel(): boolean {
    return false
  }
  async shutdown(): Promise<void> {}
  describe(): Record<string, unknown> {
    return { type: this.type }
  }
}

