export {
  PostgresStore,
  PostgresStoreError,
  type PostgresStoreOptions,
  postgresPoolOptions,
} from './PostgresStore.js'
