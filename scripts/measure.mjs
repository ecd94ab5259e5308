// Throughput of several implementations measured in the same run. Rounds alternate between the sides
// (A, B, A, B, …) so that background load hits both alike; each side reports its median round.
// `prepare(n)` builds per-iteration inputs outside the timed region (e.g. fresh credentials).
// `warmup` untimed calls per side come first (default: a quarter of a round).
// `around` (optional): `start(name)` just before and `end(name, iterations)` just after each timed round,
// outside its clock (e.g. to read the process CPU time over the round without a call per iteration).
export async function compare(sides, { iterations = 2000, rounds = 7, prepare, warmup, around } = {}) {
  const names = Object.keys(sides)
  const samples = Object.fromEntries(names.map((name) => [name, []]))
  for (const name of names) {
    // Prepared in batches of at most a round (prepared inputs may expire, as Solana blockhashes do).
    for (let left = warmup ?? Math.ceil(iterations / 4); left > 0; left -= iterations) {
      const count = Math.min(left, iterations)
      const warm = prepare ? await prepare[name](count) : undefined
      for (let i = 0; i < count; i++) await sides[name](warm?.[i])
    }
  }
  for (let round = 0; round < rounds; round++) {
    for (const name of names) {
      const batch = prepare ? await prepare[name](iterations) : undefined
      around?.start(name)
      const start = process.hrtime.bigint()
      for (let i = 0; i < iterations; i++) await sides[name](batch?.[i])
      samples[name].push(iterations / (Number(process.hrtime.bigint() - start) / 1e9))
      around?.end(name, iterations)
    }
  }
  return Object.fromEntries(
    names.map((name) => {
      const sorted = samples[name].sort((a, b) => a - b)
      return [name, sorted[Math.floor(sorted.length / 2)]]
    }),
  )
}

// Latency percentiles (ms) of sequential calls of each side, interleaved one call at a time.
export async function latency(sides, { iterations = 30 } = {}) {
  const names = Object.keys(sides)
  const samples = Object.fromEntries(names.map((name) => [name, []]))
  for (let i = 0; i < iterations; i++) {
    for (const name of names) {
      const start = process.hrtime.bigint()
      await sides[name](i)
      samples[name].push(Number(process.hrtime.bigint() - start) / 1e6)
    }
  }
  const p = (values, q) =>
    values.sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))]
  return Object.fromEntries(
    names.map((name) => [name, { p50: p(samples[name], 0.5), p90: p(samples[name], 0.9) }]),
  )
}
