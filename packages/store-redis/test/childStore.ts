import { RedisStore } from '@mppkit/store-redis'

/** The store of each server process in the multi-process test (bundled into the process). */
export const createStore = (config: { url: string; keyPrefix: string }) =>
  new RedisStore({ url: config.url, keyPrefix: config.keyPrefix })
