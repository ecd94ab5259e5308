export { RedisStore, RedisStoreError, type RedisStoreOptions, redisClientOptions } from './RedisStore.js'
