import { fileURLToPath, pathToFileURL } from 'node:url'
import { resolve } from 'node:path'

/**
 * A file a task reads or writes. `String(file)` is its local path, so it drops straight into
 * bash command lines and fs calls. Relative paths are resolved against the workflow's working
 * directory when the File is made, so the path means the same on a worker with another cwd.
 */
export class File {
  readonly url: string
  readonly scheme: string

  constructor(location: string | URL) {
    const text = location instanceof URL ? location.href : location
    if (typeof text !== 'string' || text.length === 0) {
      throw new TypeError('File needs a non-empty path or URL, e.g. new File("out/result.txt")')
    }
    const schemeMatch = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(text)
    if (schemeMatch) {
      this.scheme = schemeMatch[1]!.toLowerCase()
      this.url = text
    } else {
      this.scheme = 'file'
      this.url = pathToFileURL(resolve(text)).href
    }
  }

  /** The local path of a `file://` File; other schemes have no local path. */
  get path(): string {
    if (this.scheme !== 'file') {
      throw new TypeError(`File ${this.url} has scheme '${this.scheme}', which has no local path`)
    }
    return fileURLToPath(this.url)
  }

  /** The basename of the file. */
  get filename(): string {
    let path: string
    try {
      path = new URL(this.url).pathname
    } catch {
      path = this.url.split(/[?#]/)[0] ?? this.url
    }
    const last = path.split('/').pop() ?? ''
    try {
      return decodeURIComponent(last)
    } catch {
      return last
    }
  }

  toString(): string {
    return this.scheme === 'file' ? this.path : this.url
  }

  toJSON(): { url: string } {
    return { url: this.url }
  }
}
