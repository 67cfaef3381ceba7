import { Command } from 'commander';
import { HYP_KEYS, resolveOptions } from '../config.js';
import { formatAdaptTable, type AdaptProgress } from '../adapt/adapt-report.js';
import { ADAPT_SCHEMA } from '../adapt/adapt-schema.js';
import { parentPidFromEnv, watchParent } from '../adapt/parent-watch.js';
import { runAdapt } from '../adapt/run-adapt.js';
import type { Hyp } from '../train/hyp.js';
import { consoleLogger, type Logger } from '../util/logger.js';
import { addSchemaOptions, optionLayers } from './schema-options.js';

/** Exit code of a job that finished and was rejected (0: accepted; 2: an error we know; 130: interrupted). */
export const ADAPT_REJECTED_EXIT = 3;

/** How long a start waits for another live process that holds the job folder's lock (one stopping: its checkpoint). */
const LOCK_WAIT_MS = 15_000;

/** A progress logger that says each stage in plain lines: labelling every tenth of the frames, each epoch, the export. */
function progressLines(log: Logger): (p: AdaptProgress) => void {
  let lastTenth = -1;
  return (p) => {
    if (p.stage === 'label') {
      const tenth = Math.floor((p.done / p.total) * 10);
      if (tenth === lastTenth) return;
      lastTenth = tenth;
      log.info(`label: ${p.done}/${p.total} frames, ${p.boxes} boxes`);
    } else if (p.stage === 'train') {
      const losses = Object.entries(p.losses).filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
      log.info(`train: epoch ${p.epoch}/${p.epochs}, ${losses}${p.holdout ? `; hold-out mAP50 ${p.holdout.map50.toFixed(3)}, mAP50-95 ${p.holdout.map.toFixed(3)}` : ''} (${p.seconds.toFixed(0)} s)`);
    } else if (p.stage === 'export') {
      log.info(p.status === 'start' ? 'export: the adapted model' : `export: wrote ${p.files?.join(', ')}`);
    }
  };
}

/**
 * `kd-trainer adapt`: one adaptation job (see runAdapt). Prints the before/after table and exits 0 when
 * the adapted model is accepted, 3 when it is rejected; Ctrl-C (SIGINT) or SIGTERM stops it after the current step
 * (130), and the same command goes on; so does the end of the process named by `KD_PARENT_PID` (kd-agent). With `--json` stdout is JSON lines for a parent process:
 * `{"progress": …}` per event, then `{"report": …}` (adapt.json) or `{"cancelled": …}`; the log goes to stderr.
 */
export function adaptCommand(): Command {
  const cmd = new Command('adapt')
    .description("fine-tune a serving detector to its own camera's captured frames, with no labels: a teacher labels them, distillation fine-tunes, hold-out and labelled checks accept or reject, an accepted model is exported (exit 0 accepted, 3 rejected)")
    .option('--cfg <file>', 'YAML file with any of these options (and hyperparameters); flags override it')
    .option('--verbose', 'debug output');
  return addSchemaOptions(cmd, ADAPT_SCHEMA).action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await optionLayers(opts);
    delete flags.verbose;
    const { config, extra } = resolveOptions(ADAPT_SCHEMA, [file, flags], HYP_KEYS);
    const out = config.json ? process.stderr : process.stdout;
    const log = consoleLogger(Boolean(opts.verbose), out);
    const ac = new AbortController();
    const onSigint = (): void => {
      if (ac.signal.aborted) process.exit(130);
      process.stderr.write('\nInterrupted: stopping after this step, checkpoint saved (Ctrl-C again to quit now); the same command goes on\n');
      ac.abort();
    };
    // SIGTERM (a service manager, or kd-agent stopping a trainer an earlier agent left) stops the same way.
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigint);
    // Under kd-agent (KD_PARENT_PID): a job whose agent is gone stops at its next step rather than train on as an
    // orphan beside the one a restarted agent starts. A closed stdout or stderr (the reading end died) says the same.
    let parentGone = false;
    const stopOrphan = (why: string): void => {
      if (parentGone) return;
      parentGone = true;
      if (!ac.signal.aborted) ac.abort();
      process.stderr.write(`kd-trainer adapt: ${why}; stopping after this step, checkpoint saved\n`);
    };
    const onPipeError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') stopOrphan('the parent stopped reading the output');
    };
    process.stdout.on('error', onPipeError);
    process.stderr.on('error', onPipeError);
    const parentPid = parentPidFromEnv();
    const watch = parentPid === undefined ? undefined : watchParent({ pid: parentPid, onGone: stopOrphan });
    try {
      const goneAtStart = watch?.check();
      if (goneAtStart !== undefined) {
        // Before the job folder is touched: the process that started this one died before it got here.
        process.stderr.write(`kd-trainer adapt: ${goneAtStart}; not starting\n`);
        process.exitCode = 130;
        return;
      }
      // --json: stdout carries one JSON object per line for the parent process (kd-agent), nothing else.
      const line = (v: unknown): void => { process.stdout.write(`${JSON.stringify(v)}\n`); };
      const lines = progressLines(log);
      const onProgress = config.json ? (p: AdaptProgress) => { lines(p); line({ progress: p }); } : lines;
      const r = await runAdapt(config, {
        logger: log, signal: ac.signal, progress: out, onProgress, hyp: extra as Partial<Hyp>, lockWaitMs: LOCK_WAIT_MS,
        onLockWait: (o) => log.warn(`${config.out} is held by process ${o.pid} (${o.by}); waiting up to ${LOCK_WAIT_MS / 1000} s for it to stop`),
      });
      if (r.status === 'cancelled') {
        if (config.json) line({ cancelled: r });
        process.exitCode = 130;
        return;
      }
      for (const l of formatAdaptTable(r)) log.info(l);
      if (config.json) line({ report: r });
      log.info(`report: ${r.paths.report}${r.paths.export ? `; export: ${r.paths.export}` : ''}`);
      process.exitCode = r.accepted ? 0 : ADAPT_REJECTED_EXIT;
    } finally {
      watch?.stop();
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigint);
    }
  });
}
