/**
 * Shell text helpers shared by launchers and provider templates. Everything a launcher or a
 * template puts into a script goes through here, so quoting lives in one place.
 */

/** Quotes `text` as one bash word: single quotes, with embedded quotes spliced in as `'\''`. */
export function shellQuote(text: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text
  return `'${text.replace(/'/g, `'\\''`)}'`
}

/** True for names bash accepts after `export` (letters, digits, underscores; no leading digit). */
export function isEnvName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)
}

/** `export NAME=value` lines, values quoted; the caller has checked the names with isEnvName. */
export function exportLines(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .map(([name, value]) => `export ${name}=${shellQuote(value)}`)
    .join('\n')
}
