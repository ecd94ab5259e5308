/** Structural equality of JSON values (key order ignored). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const other = b as unknown[]
    return a.length === other.length && a.every((value, i) => deepEqual(value, other[i]))
  }
  const aKeys = Object.keys(a).filter((k) => (a as any)[k] !== undefined)
  const bKeys = Object.keys(b).filter((k) => (b as any)[k] !== undefined)
  return aKeys.length === bKeys.length && aKeys.every((k) => deepEqual((a as any)[k], (b as any)[k]))
}
