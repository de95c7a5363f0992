import { closeSync, fstatSync, openSync, readSync } from 'node:fs'

/**
 * The last `maxLines` lines of a text file (read from its last `maxBytes` bytes, none before
 * `fromOffset`), trimmed; '' if
 * the file is missing or empty. Used to explain a failure with the process's own output (a failed
 * block, a bash app's stderr), so the message is bounded however much was written.
 */
export function readTail(path: string, maxLines = 20, maxBytes = 4096, fromOffset = 0): string {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    const size = fstatSync(fd).size
    // Bytes before fromOffset were there before (an appended log file): not this process's output.
    const length = Math.max(0, Math.min(size - fromOffset, maxBytes))
    const buffer = Buffer.alloc(length)
    readSync(fd, buffer, 0, length, size - length)
    let lines = buffer.toString('utf8').split('\n')
    // A cut through the first line would show a fragment: drop it when the read did not start at 0.
    if (length < size - fromOffset && lines.length > 1) lines = lines.slice(1)
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
