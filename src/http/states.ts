/**
 * The states a snapshot's value is in, each as its dotted id, ancestors
 * included: `{ turnTaking: 'holding' }` → `['turnTaking', 'turnTaking.holding']`.
 */
export function activeStates (value: unknown, prefix = ''): string[] {
  if (typeof value === 'string') return [prefix + value]
  if (value === null || typeof value !== 'object') return []
  const out: string[] = []
  for (const [k, v] of Object.entries(value)) {
    out.push(prefix + k)
    out.push(...activeStates(v, `${prefix}${k}.`))
  }
  return out
}

/** The deepest active state(s), dotted: `turnTaking.holding`. */
export function leafState (value: unknown): string {
  const states = activeStates(value)
  return states.filter((s) => !states.some((o) => o.startsWith(`${s}.`))).join(', ')
}
