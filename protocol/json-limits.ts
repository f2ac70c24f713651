/** §1: a JSON value nested deeper than this is a protocol violation (`[[1]]` is 2 levels deep). */
export const MAX_JSON_DEPTH = 256

export type JsonCheck = { readonly ok: true } | { readonly ok: false, readonly detail: string }

/**
 * §1 limits on a parsed value: nesting at most `maxDepth` levels (each array
 * or object adds one) and every number a finite double. Iterative, so a
 * value a million levels deep is refused without touching the stack.
 */
export function checkJsonValue (value: unknown, maxDepth: number = MAX_JSON_DEPTH): JsonCheck {
  const stack: Array<{ readonly value: unknown, readonly depth: number }> = [{ value, depth: 0 }]
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop() as { value: unknown, depth: number }
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { ok: false, detail: `a number that is not a finite double (${String(v)})` }
    } else if (typeof v === 'object' && v !== null) {
      if (depth + 1 > maxDepth) return { ok: false, detail: `JSON nested more than ${maxDepth} levels deep` }
      const children = Array.isArray(v) ? v : Object.values(v)
      for (const child of children) {
        if (typeof child === 'object' ? child !== null : typeof child === 'number') stack.push({ value: child, depth: depth + 1 })
      }
    }
  }
  return { ok: true }
}
