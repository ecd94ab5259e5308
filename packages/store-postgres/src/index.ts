export { PostgresStore, type PostgresStoreOptions, postgresPoolOptions } from './PostgresStore.js'
