import type { Logger } from '@kd-edge/core';

// The levelled logger is core's: the trainer's modules import it from here with consoleLogger.
export { silentLogger, type Logger } from '@kd-edge/core';

/**
 * Logger writing warnings and errors to stderr and info to `out` (stdout, or stderr when stdout
 * carries machine-readable output); debug only when `verbose`.
 */
export function consoleLogger(verbose = false, out: NodeJS.WritableStream = process.stdout): Logger {
  return {
    debug: (m) => { if (verbose) out.write(`${m}\n`); },
    info: (m) => out.write(`${m}\n`),
    warn: (m) => process.stderr.write(`WARNING: ${m}\n`),
    error: (m) => process.stderr.write(`ERROR: ${m}\n`),
  };
}

/** Logger that records lines in memory, for tests. */
export function memoryLogger(): Logger & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const rec = (level: string) => (msg: string) => { lines.push({ level, msg }); };
  return { lines, debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') };
}
