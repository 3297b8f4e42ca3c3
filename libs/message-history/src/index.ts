export { HistoryMessage, HistoryEvent, HistoryChannelState, HISTORY_ENTITIES } from './entities.js';
export { CreateHistoryTables1747000000000, DropUnreadHistoryEventIndexes1749000000000, WidenHistoryMessageId1748000000000, HISTORY_MIGRATIONS } from './migrations.js';
export { HistoryEventSubscriber } from './subscriber.js';
export { mergeEvent, statusOf, emptySummary, type SummaryEvent, type SummaryState } from './summary.js';
export {
  buildHistoryDataSource,
  createHistoryDataSource,
  historyDataSourceOptions,
  historyOptionsFromEnv,
  historyOptionsFromUrl,
  withDatabaseLock,
  DEFAULT_SQLJS_LOCATION,
  HISTORY_MIGRATIONS_TABLE,
  type HistoryDataSourceOptions,
  type HistoryMysqlOptions,
  type HistorySqljsOptions,
} from './data-source.js';
export { HistoryRecorder, type HistoryRecorderOptions, type HistoryRecorderStats, type RetentionResult } from './recorder.js';
export { historyRecordFromNsqdEvent, recordNsqdEvents } from './nsqd.js';
export { HistoryJournal, type HistoryJournalOptions, type HistoryJournalStats } from './journal.js';
export {
  historyHooks,
  historyRecordsFromPublish,
  historyRecordFromDelivery,
  historyRecordFromFinish,
  historyRecordFromRequeue,
  historyRecordFromDeadLetter,
  type HistoryHooksOptions,
} from './transport.js';
export {
  HistoryQueryService,
  HistoryQueryError,
  DEFAULT_SEARCH_LIMIT,
  MAX_SEARCH_LIMIT,
  type HistoryMessageView,
  type HistoryEventView,
  type HistoryChannelView,
  type HistoryMessageDetail,
  type HistorySearchParams,
  type HistorySearchItem,
  type HistorySearchResult,
  type HistoryCounts,
  type HistoryTimeInput,
} from './query.js';
export { Spool } from './spool.js';
export { HISTORY_EVENT_TYPES, HISTORY_STATUSES, COLUMN_LIMITS, CLIENT_NSQD, type HistoryEventType, type HistoryStatus, type HistoryRecord, type HistorySink } from './types.js';
