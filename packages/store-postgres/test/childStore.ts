import { PostgresStore } from '@mppkit/store-postgres'

/** The store of each server process in the multi-process test (bundled into the process). */
export const createStore = (config: { connectionString: string; schema: string }) =>
  new PostgresStore({ connectionString: config.connectionString, schema: config.schema })
