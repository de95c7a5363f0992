import { closeSync, fstatSync, openSync, readSync } from 'node:fs'

/**
 * The last `maxLines` lines of a text file (read from its last `maxBytes` bytes), trimmed; '' if
 * the file is missing or empty. Used to explain a failure with the process's own output (a failed
 * block, a bash app's stderr), so the message is bounded however much was written.
 */
export function readTail(path: string, maxLines = 20, maxBytes = 4096): string {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    const size = fstatSync(fd).size
    const length = Math.min(size, maxBytes)
    const buffer = Buffer.alloc(length)
    readSync(fd, buffer, 0, length, size - length)
    let lines = buffer.toString('utf8').split('\n')
    // A cut through the first line would show a fragment: drop it when the read did not start at 0.
    if (length < size && lines.length > 1) lines = lines.slice(1)
    return lines
      .map((line) => line.trimEnd())
      .join('\n')
      .trim()
      .split('\n')
      .slice(-maxLines)
      .join('\n')
  } catch {
    return ''
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
