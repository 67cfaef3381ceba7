import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { decodeChunkFrame, makeChunkRequest, type DeployCommand } from '@kd-edge/core';
import type { Agent } from '../agent.js';
import { ChunkDownloader } from '../transfer/chunk-download.js';
import { httpDownload } from '../transfer/http-download.js';
import type { CommandContext } from './command-context.js';

/**
 * The CAs an https package download trusts: the system's, plus the broker's CA file when one is configured (a
 * private CA usually signs kd-fleet's certificate as well). Undefined (Node's defaults) without one. The system's
 * stay: a download may be redirected to a public store (a presigned S3 URL, a CDN).
 */
export async function artifactCas(brokerCaFile: string | undefined): Promise<Array<string | Buffer> | undefined> {
  if (brokerCaFile === undefined) return undefined;
  return [...rootCertificates, await readFile(brokerCaFile)];
}

/** Progress events at most this often (the last one always goes out). */
const PROGRESS_EVERY_MS = 1000;

/**
 * Brings a deploy's package tar to `dest`: over HTTP with Range resume when the command gives a URL,
 * else as MQTT chunks asked for on `devices/{id}/chunks/req` and received on the model's `chunks`
 * topic. Either way a restart resumes from what is on disk, and the result is checked against the
 * command's size and SHA-256 before it is used.
 */
export async function fetchPackage(agent: Agent, cmd: DeployCommand, dest: string, ctx: CommandContext): Promise<void> {
  const pkg = cmd.package;
  let last = 0;
  const progress = (bytes: number): void => {
    const now = Date.now();
    if (now - last < PROGRESS_EVERY_MS && bytes < pkg.size) return;
    last = now;
    void ctx.event('downloading', { progress: { bytes, total: pkg.size } }).catch(() => undefined);
  };
  if (pkg.http !== undefined) {
    const limits = agent.config.limits;
    await httpDownload({
      url: pkg.http.url, dest, size: pkg.size, sha256: pkg.sha256, headers: pkg.http.headers,
      ca: await artifactCas(agent.config.broker.ca),
      maxBytes: limits.maxPackageBytes, signal: ctx.signal,
      deadlineMs: limits.downloadDeadlineSec * 1000,
      minBytesPerSec: limits.downloadMinBytesPerSec, rateWindowMs: limits.downloadRateWindowSec * 1000,
      retryWindowMs: limits.downloadRetryWindowSec * 1000, timeoutMs: limits.downloadIdleTimeoutSec * 1000,
      onProgress: (p) => progress(p.bytes),
    });
    return;
  }
  const chunkSize = pkg.mqtt!.chunkSize;
  // kd-fleet answers on this device's own chunk topic.
  const chunksTopic = agent.topics.chunks(pkg.name, pkg.version, agent.deviceId);
  const downloader = new ChunkDownloader({
    dest, sha256: pkg.sha256, size: pkg.size, chunkSize, signal: ctx.signal, timeoutMs: agent.config.limits.chunkTimeoutMs,
    request: async (indexes) => {
      const req = makeChunkRequest({ deviceId: agent.deviceId, name: pkg.name, version: pkg.version, sha256: pkg.sha256, chunkSize, indexes });
      await agent.session.publish(agent.topics.chunkRequests(agent.deviceId), JSON.stringify(req), { qos: 1 });
    },
  });
  downloader.on('progress', (p) => progress(p.bytes));
  const onMessage = (topic: string, payload: Buffer): void => {
    if (topic !== chunksTopic) return;
    let frame;
    try {
      frame = decodeChunkFrame(payload);
    } catch {
      return; // corrupt or malformed (core checks the chunk hash): the chunk is asked for again on timeout
    }
    const h = frame.header;
    void downloader.accept({ index: h.index, offset: h.offset, data: frame.data, chunkSha256: h.chunkSha256, sha256: h.sha256, count: h.count }).catch(() => undefined);
  };
  agent.session.on('message', onMessage);
  await agent.session.subscribe(chunksTopic);
  try {
    await downloader.run();
  } finally {
    agent.session.off('message', onMessage);
    await agent.session.unsubscribe(chunksTopic).catch(() => undefined);
  }
}
