import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { decodeChunkFrame, makeChunkRequest, type DeployCommand, type FleetTopics } from '@kd-edge/core';
import type { AgentConfig } from '../config/agent-config.js';
import { ChunkDownloader } from './chunk-download.js';
import { httpDownload } from './http-download.js';

/**
 * The CAs an https package download trusts: the system's, plus the broker's CA file when one is configured (a
 * private CA usually signs kd-fleet's certificate as well). Undefined (Node's defaults) without one. The system's
 * stay: a download may be redirected to a public store (a presigned S3 URL, a CDN).
 */
export async function artifactCas(brokerCaFile: string | undefined): Promise<Array<string | Buffer> | undefined> {
  if (brokerCaFile === undefined) return undefined;
  return [...rootCertificates, await readFile(brokerCaFile)];
}

/** What {@link fetchPackage} needs of the MQTT session for chunk downloads: publish a request, follow a topic. */
export interface PackageChannel {
  publish(topic: string, payload: string): Promise<unknown>;
  subscribe(topic: string): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  /** Calls `handler` for every message received; returns the function that stops it. */
  onMessage(handler: (topic: string, payload: Buffer) => void): () => void;
}

/** Options of {@link fetchPackage}. */
export interface FetchPackageOptions {
  deviceId: string;
  topics: FleetTopics;
  limits: AgentConfig['limits'];
  /** The broker's CA file, also trusted for https downloads. */
  brokerCa?: string;
  channel: PackageChannel;
  signal: AbortSignal;
  /** Bytes so far, at most once a second (and once at the end). */
  onProgress(bytes: number): void;
}

/** Progress reports at most this often (the last one always goes out). */
const PROGRESS_EVERY_MS = 1000;

/**
 * Brings a deploy's package tar to `dest`: over HTTP with Range resume when the command gives a URL,
 * else as MQTT chunks asked for on `devices/{id}/chunks/req` and received on the device's own chunk
 * topic. Either way a restart resumes from what is on disk, and the result is checked against the
 * command's size and SHA-256 before it is used.
 */
export async function fetchPackage(cmd: DeployCommand, dest: string, o: FetchPackageOptions): Promise<void> {
  const pkg = cmd.package;
  let last = 0;
  const progress = (bytes: number): void => {
    const now = Date.now();
    if (now - last < PROGRESS_EVERY_MS && bytes < pkg.size) return;
    last = now;
    o.onProgress(bytes);
  };
  if (pkg.http !== undefined) {
    const limits = o.limits;
    await httpDownload({
      url: pkg.http.url, dest, size: pkg.size, sha256: pkg.sha256, headers: pkg.http.headers,
      ca: await artifactCas(o.brokerCa),
      maxBytes: limits.maxPackageBytes, signal: o.signal,
      deadlineMs: limits.downloadDeadlineSec * 1000,
      minBytesPerSec: limits.downloadMinBytesPerSec, rateWindowMs: limits.downloadRateWindowSec * 1000,
      retryWindowMs: limits.downloadRetryWindowSec * 1000, timeoutMs: limits.downloadIdleTimeoutSec * 1000,
      onProgress: (p) => progress(p.bytes),
    });
    return;
  }
  const chunkSize = pkg.mqtt!.chunkSize;
  // kd-fleet answers on this device's own chunk topic.
  const chunksTopic = o.topics.chunks(pkg.name, pkg.version, o.deviceId);
  const downloader = new ChunkDownloader({
    dest, sha256: pkg.sha256, size: pkg.size, chunkSize, signal: o.signal, timeoutMs: o.limits.chunkTimeoutMs,
    request: async (indexes) => {
      const req = makeChunkRequest({ deviceId: o.deviceId, name: pkg.name, version: pkg.version, sha256: pkg.sha256, chunkSize, indexes });
      await o.channel.publish(o.topics.chunkRequests(o.deviceId), JSON.stringify(req));
    },
  });
  downloader.on('progress', (p) => progress(p.bytes));
  const stop = o.channel.onMessage((topic, payload) => {
    if (topic !== chunksTopic) return;
    let frame;
    try {
      frame = decodeChunkFrame(payload);
    } catch {
      return; // corrupt or malformed (core checks the chunk hash): the chunk is asked for again on timeout
    }
    const h = frame.header;
    void downloader.accept({ index: h.index, offset: h.offset, data: frame.data, chunkSha256: h.chunkSha256, sha256: h.sha256, count: h.count }).catch(() => undefined);
  });
  await o.channel.subscribe(chunksTopic);
  try {
    await downloader.run();
  } finally {
    stop();
    await o.channel.unsubscribe(chunksTopic).catch(() => undefined);
  }
}
