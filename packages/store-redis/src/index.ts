export { RedisStore, type RedisStoreOptions, redisClientOptions } from './RedisStore.js'
