export { runHttpService, createServiceLogger, type ServiceStart } from './bootstrap.js';
export { SampleDatabase, type SampleDatabaseOptions } from './database.js';
export {
  SampleConfigError,
  addressListFromEnv,
  databaseFromEnv,
  describeDatabase,
  listenAddressFromEnv,
  type DatabaseConnectionOptions,
  type Env,
  type ListenAddress,
} from './env.js';
export { clientHistoryFromEnv, startClientHistory, type ClientHistory, type ClientHistoryConfig } from './history.js';
