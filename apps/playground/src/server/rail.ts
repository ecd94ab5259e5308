// A rail the playground's server adds on its own: its part of /api/config and the routes it answers.

/** A playground rail: set up from the devnet, queried by the page through its own routes. */
export type PlaygroundRail = {
  /** Its key in /api/config. */
  name: string
  /** What the page needs (devnet keys only); awaits the rail's setup on the devnet. */
  config(): Promise<unknown>
  /** Answers a request of this rail, or undefined when the path is not its own. */
  handle(request: Request, path: string): Promise<Response | undefined>
}

export const jsonResponse = (value: unknown, status = 200) =>
  new Response(
    JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v), 2),
    {
      status,
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
    },
  )
