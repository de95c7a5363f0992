/**
 * Parent-death detection through a pipe. The spawning process keeps the write end of a pipe that
 * is the child's stdin and never writes to it; the kernel closes it when the parent ends, however
 * it ends (exit, SIGINT, SIGTERM, SIGKILL, a crash), and the child reads end-of-file at once.
 * Unlike a heartbeat this needs nothing from the parent's event loop, so a parent busy for a
 * long time in synchronous code is never mistaken for a dead one.
 */
import type { Socket } from 'node:net'

/** Set to `stdin` in the child's environment when its stdin is such a pipe. */
export const PARENT_PIPE_ENV = 'TSFLOW_PARENT_PIPE'

/** Environment and stdin setting for spawning a child that watches its parent this way. */
export function parentPipeSpawn(env: NodeJS.ProcessEnv = process.env): { env: NodeJS.ProcessEnv; stdin: 'pipe' } {
  return { env: { ...env, [PARENT_PIPE_ENV]: 'stdin' }, stdin: 'pipe' }
}

/**
 * In the child: if the environment says stdin is the parent's pipe, calls `onGone` once when it
 * closes and returns true; otherwise does nothing and returns false. The watch does not keep the
 * process alive.
 */
export function watchParentPipe(onGone: (why: string) => void): boolean {
  if (process.env[PARENT_PIPE_ENV] !== 'stdin') return false
  const stdin = process.stdin
  let fired = false
  const gone = (why: string) => {
    if (fired) return
    fired = true
    onGone(why)
  }
  // Anything the parent writes is ignored; only the end matters.
  stdin.on('data', () => undefined)
  stdin.once('end', () => gone('its parent process ended (the parent pipe reached end-of-file)'))
  stdin.once('close', () => gone('its parent process ended (the parent pipe closed)'))
  stdin.once('error', (error) => gone(`the parent pipe failed (${error.message}); presuming the parent gone`))
  ;(stdin as unknown as Partial<Socket>).unref?.()
  return true
}
