// @kd-edge/core/util: Errors, the levelled logger, seeded randomness and durable file writes: what every part of kd-edge uses.
// Also re-exported by the package root; import this path to load only what it needs.

// Errors
export { KdEdgeError, ConfigError } from '../errors.js';

// The levelled logger library parts take
export { silentLogger, stderrLogger, LOG_LEVELS } from './logger.js';
export type { Logger, LogLevel } from './logger.js';

// Seeded randomness (model initialisation, test data)
export { seededRandom } from './seeded-random.js';

// Durable file replacement (temporary sibling, fsync, rename, fsync of the folder)
export { writeFileDurable, fsyncDir, fsyncTree, tempSibling, TMP_TAG } from './durable-write.js';

// The on-device adaptation job's lock (`<JOBDIR>/lock`): kd-trainer adapt takes it, kd-agent reads it
export {
  JOB_LOCK_FILE, parseJobLock, readJobLock, parseProcStat, procStat, procStatSync, processAlive, processAliveSync,
} from './job-lock.js';
export type { JobLockOwner, ProcStat, ReadProc, ReadProcSync } from './job-lock.js';
