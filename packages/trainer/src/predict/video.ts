/**
 * Video through the ffmpeg command line: ffprobe reads the size, rate and frame count, one ffmpeg
 * decodes to raw RGB frames on a pipe, another encodes annotated raw frames to an mp4.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { once } from 'node:events';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { SourceError } from './source-error.js';

const run = promisify(execFile);

/** The ffmpeg and ffprobe executables found on PATH. */
export interface Ffmpeg {
  ffmpeg: string;
  ffprobe: string;
}

/** The first executable called `name` on `pathEnv` (PATH by default), or undefined. */
export function findExecutable(name: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** ffmpeg and ffprobe from PATH; a SourceError naming them and `what` needed them when either is missing. */
export function requireFfmpeg(what: string): Ffmpeg {
  const ffmpeg = findExecutable('ffmpeg');
  const ffprobe = findExecutable('ffprobe');
  if (ffmpeg === undefined || ffprobe === undefined) {
    const missing = [ffmpeg === undefined ? 'ffmpeg' : '', ffprobe === undefined ? 'ffprobe' : ''].filter(Boolean).join(' and ');
    throw new SourceError(
      'PREDICT_FFMPEG_MISSING',
      `${what}: reading videos needs ffmpeg and ffprobe on PATH, and ${missing} ${missing.includes(' and ') ? 'are' : 'is'} not there (install ffmpeg, e.g. apt-get install ffmpeg)`,
    );
  }
  return { ffmpeg, ffprobe };
}

/** What {@link probeVideo} reads from a video's first video stream. */
export interface VideoInfo {
  /** Frame size after ffmpeg's auto-rotation (the size the decoded frames have). */
  width: number;
  height: number;
  fps: number;
  /** Frames in the stream (counted packets); 0 when unknown. */
  frames: number;
}

function rate(text: string | undefined): number {
  if (!text) return 0;
  const [n, d] = text.split('/').map(Number);
  const v = d === undefined ? n! : n! / d;
  return Number.isFinite(v) && v > 0 ? v : 0;
}

/** Size, frame rate and frame count of `file`'s first video stream, from ffprobe. */
export async function probeVideo(file: string, tools: Ffmpeg): Promise<VideoInfo> {
  let out: string;
  try {
    ({ stdout: out } = await run(tools.ffprobe, [
      '-v', 'error', '-select_streams', 'v:0', '-count_packets',
      '-show_entries', 'stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,nb_read_packets:stream_tags=rotate:stream_side_data=rotation',
      '-of', 'json', file,
    ], { maxBuffer: 1 << 20 }));
  } catch (e) {
    const msg = ((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n').pop();
    throw new SourceError('PREDICT_VIDEO_FAILED', `${file}: ffprobe cannot read it (${msg})`, { cause: e });
  }
  type Stream = { width?: number; height?: number; avg_frame_rate?: string; r_frame_rate?: string; nb_frames?: string; nb_read_packets?: string;
    tags?: { rotate?: string }; side_data_list?: { rotation?: number }[] };
  const s = (JSON.parse(out) as { streams?: Stream[] }).streams?.[0];
  if (s?.width === undefined || s.height === undefined) throw new SourceError('PREDICT_VIDEO_FAILED', `${file}: no video stream`);
  const rotation = Number(s.side_data_list?.find((d) => d.rotation !== undefined)?.rotation ?? s.tags?.rotate ?? 0);
  // ffmpeg auto-rotates while decoding, so a quarter turn swaps the decoded frames' sides.
  const quarter = Math.abs(Math.round(rotation / 90)) % 2 === 1;
  return {
    width: quarter ? s.height : s.width,
    height: quarter ? s.width : s.height,
    fps: rate(s.avg_frame_rate) || rate(s.r_frame_rate) || 30,
    frames: Number(s.nb_read_packets ?? s.nb_frames ?? 0) || 0,
  };
}

function stderrTail(chunks: Buffer[]): string {
  return Buffer.concat(chunks).toString('utf8').trim().split('\n').slice(-3).join(' | ');
}

/** Raw RGB24 frames of `file` (width·height·3 bytes each, top row first), decoded by ffmpeg on a pipe. */
export async function* readVideoFrames(file: string, info: VideoInfo, tools: Ffmpeg): AsyncGenerator<Uint8Array> {
  const frameBytes = info.width * info.height * 3;
  const proc = spawn(tools.ffmpeg, ['-v', 'error', '-nostdin', '-i', file, '-map', '0:v:0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const err: Buffer[] = [];
  proc.stderr.on('data', (c: Buffer) => err.push(c));
  const exited = new Promise<number | null>((res, rej) => {
    proc.on('error', rej);
    proc.on('close', (code) => res(code));
  });
  let done = false;
  try {
    let frame = Buffer.allocUnsafe(frameBytes);
    let fill = 0;
    for await (const chunk of proc.stdout as AsyncIterable<Buffer>) {
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(frameBytes - fill, chunk.length - off);
        chunk.copy(frame, fill, off, off + n);
        fill += n;
        off += n;
        if (fill === frameBytes) {
          yield new Uint8Array(frame.buffer, frame.byteOffset, frameBytes);
          frame = Buffer.allocUnsafe(frameBytes);
          fill = 0;
        }
      }
    }
    const code = await exited;
    done = true;
    if (code !== 0) throw new SourceError('PREDICT_VIDEO_FAILED', `${file}: ffmpeg failed to decode it (exit ${code}: ${stderrTail(err)})`);
  } finally {
    if (!done) {
      proc.kill();
      await exited.catch(() => undefined);
    }
  }
}

let encoderCache: Promise<string[]> | undefined;

/** The encoder arguments for an mp4: H.264 when this ffmpeg has libx264, else its built-in MPEG-4 Part 2. */
async function encoderArgs(ffmpeg: string): Promise<string[]> {
  encoderCache ??= run(ffmpeg, ['-hide_banner', '-encoders'], { maxBuffer: 4 << 20 })
    .then(({ stdout }) => (/\slibx264\s/.test(stdout) ? ['-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23'] : ['-c:v', 'mpeg4', '-q:v', '3']))
    .catch(() => ['-c:v', 'mpeg4', '-q:v', '3']);
  return encoderCache;
}

/** Encodes raw RGB24 frames to an mp4 through an ffmpeg pipe. */
export class VideoWriter {
  private readonly err: Buffer[] = [];
  private readonly exited: Promise<number | null>;
  private pipeError: Error | undefined;

  private constructor(private readonly proc: ChildProcessWithoutNullStreams, readonly file: string, private readonly frameBytes: number) {
    proc.stderr.on('data', (c: Buffer) => this.err.push(c));
    proc.stdin.on('error', (e) => { this.pipeError = e; });
    this.exited = new Promise((res, rej) => {
      proc.on('error', rej);
      proc.on('close', (code) => res(code));
    });
  }

  /** Starts ffmpeg writing `file` (yuv420p, even sides padded) at `fps`. */
  static async open(file: string, width: number, height: number, fps: number, tools: Ffmpeg): Promise<VideoWriter> {
    const args = [
      '-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', '-',
      // yuv420p needs even sides.
      '-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2', ...(await encoderArgs(tools.ffmpeg)), '-pix_fmt', 'yuv420p', '-movflags', '+faststart', file,
    ];
    return new VideoWriter(spawn(tools.ffmpeg, args, { stdio: ['pipe', 'pipe', 'pipe'] }), file, width * height * 3);
  }

  /** Queues one frame, waiting while the pipe is full. */
  async write(frame: Uint8Array): Promise<void> {
    if (frame.length !== this.frameBytes) throw new RangeError(`frame must hold ${this.frameBytes} bytes, got ${frame.length}`);
    if (this.pipeError) throw this.failure();
    if (!this.proc.stdin.write(frame)) {
      await Promise.race([once(this.proc.stdin, 'drain'), this.exited]);
    }
  }

  /** Ends the stream and waits for ffmpeg to finish the file. */
  async close(): Promise<void> {
    this.proc.stdin.end();
    const code = await this.exited;
    if (code !== 0) throw this.failure(code);
  }

  /** Stops ffmpeg without finishing the file (after an error elsewhere). */
  async abort(): Promise<void> {
    this.proc.kill();
    await this.exited.catch(() => undefined);
  }

  private failure(code?: number | null): SourceError {
    return new SourceError('PREDICT_VIDEO_FAILED', `${this.file}: ffmpeg failed to encode it (${code === undefined ? this.pipeError?.message : `exit ${code}`}: ${stderrTail(this.err)})`);
  }
}
