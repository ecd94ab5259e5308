// @ts-check
// Examples report a failure as one line and a hint, never a stack trace.

/** The one-line cause of an error: the system error behind `fetch failed`, else the first line. */
export function cause(error) {
  for (let e = error, depth = 0; e && depth < 8; e = e.cause, depth++)
    if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code))
      return e.address ? `${e.code} ${e.address}${e.port ? `:${e.port}` : ''}` : e.message
  return String(error?.message ?? error).split('\n')[0]
}

/** Prints `name: cause` and `hint: …` for any uncaught error, and exits 1. */
export function onFailure(name, hint) {
  const report = (error) => {
    console.error(`${name}: ${cause(error)}`)
    console.error(`hint: ${hint}`)
    process.exit(1)
  }
  process.on('uncaughtException', report)
  process.on('unhandledRejection', report)
}

/** Throws a one-line error unless every named environment variable is set. */
export function requireEnv(...names) {
  const missing = names.filter((name) => !process.env[name])
  if (missing.length) throw new Error(`${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not set`)
}
