import { describe, expect, it } from 'vitest';
import { parseTrtexecPerformance, trtexecLatencyMs } from '../src/runtime/trtexec-report.js';
import { RuntimeError } from '../src/runtime/runtime-error.js';
import { parseTrtexecVersion, trtVersionFromNumber } from '../src/runtime/trtexec-version.js';

// Output shapes of real trtexec runs (sampleReporting.cpp); figures are illustrative.
const TRT_10_3 = `&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # /usr/src/tensorrt/bin/trtexec --loadEngine=m.engine --percentile=90,95,99
[08/14/2025-09:12:40] [I] === Trace details ===
[08/14/2025-09:12:40] [I] Trace averages of 10 runs:
[08/14/2025-09:12:40] [I] Average on 10 runs - GPU latency: 1.2 ms - Host latency: 1.3 ms (enqueue 0.4 ms)
[08/14/2025-09:12:40] [I]
[08/14/2025-09:12:40] [I] === Performance summary ===
[08/14/2025-09:12:40] [I] Throughput: 812.345 qps
[08/14/2025-09:12:40] [I] Latency: min = 1.21045 ms, max = 2.74536 ms, mean = 1.29871 ms, median = 1.27393 ms, percentile(90%) = 1.35107 ms, percentile(95%) = 1.40234 ms, percentile(99%) = 1.6272 ms
[08/14/2025-09:12:40] [I] Enqueue Time: min = 0.352539 ms, max = 1.0791 ms, mean = 0.401 ms, median = 0.39209 ms, percentile(90%) = 0.43 ms, percentile(95%) = 0.45 ms, percentile(99%) = 0.61 ms
[08/14/2025-09:12:40] [I] H2D Latency: min = 0.0717773 ms, max = 0.113281 ms, mean = 0.0781 ms, median = 0.0776367 ms, percentile(90%) = 0.0812 ms, percentile(95%) = 0.0831 ms, percentile(99%) = 0.0899 ms
[08/14/2025-09:12:40] [I] GPU Compute Time: min = 1.11523 ms, max = 2.63 ms, mean = 1.2004 ms, median = 1.17773 ms, percentile(90%) = 1.25 ms, percentile(95%) = 1.3 ms, percentile(99%) = 1.52 ms
[08/14/2025-09:12:40] [I] D2H Latency: min = 0.0185547 ms, max = 0.0439453 ms, mean = 0.0202 ms, median = 0.0197754 ms, percentile(90%) = 0.021 ms, percentile(95%) = 0.0221 ms, percentile(99%) = 0.0278 ms
[08/14/2025-09:12:40] [I] Total Host Walltime: 3.00242 s
[08/14/2025-09:12:40] [I] Total GPU Compute Time: 2.92817 s
[08/14/2025-09:12:40] [W] * GPU compute time is unstable, with coefficient of variance = 6.12%.
[08/14/2025-09:12:40] [W]   If not already in use, locking GPU clock frequency or adding --useSpinWait may improve the stability.
[08/14/2025-09:12:40] [I] Explanations of the performance metrics are printed in the verbose logs.
[08/14/2025-09:12:40] [I]
&&&& PASSED TensorRT.trtexec [TensorRT v100300] # /usr/src/tensorrt/bin/trtexec --loadEngine=m.engine --percentile=90,95,99
`;

const TRT_8_2 = `&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # /usr/src/tensorrt/bin/trtexec --loadEngine=m.engine
[12/01/2021-10:15:32] [I] TensorRT version: 8.2.1
[12/01/2021-10:15:32] [I] === Performance summary ===
[12/01/2021-10:15:32] [I] Throughput: 203.577 qps
[12/01/2021-10:15:32] [I] Latency: min = 4.8501 ms, max = 5.53516 ms, mean = 4.9035 ms, median = 4.89648 ms, percentile(99%) = 5.16284 ms
[12/01/2021-10:15:32] [I] End-to-End Host Latency: min = 4.85742 ms, max = 9.78906 ms, mean = 9.69467 ms, median = 9.70996 ms, percentile(99%) = 9.75391 ms
[12/01/2021-10:15:32] [I] Enqueue Time: min = 0.904785 ms, max = 1.51367 ms, mean = 0.958 ms, median = 0.94751 ms, percentile(99%) = 1.12 ms
[12/01/2021-10:15:32] [I] H2D Latency: min = 0.243164 ms, max = 0.278 ms, mean = 0.2482 ms, median = 0.247 ms, percentile(99%) = 0.263 ms
[12/01/2021-10:15:32] [I] GPU Compute Time: min = 4.57 ms, max = 5.25 ms, mean = 4.62 ms, median = 4.61 ms, percentile(99%) = 4.88 ms
[12/01/2021-10:15:32] [I] D2H Latency: min = 0.0322 ms, max = 0.041 ms, mean = 0.0335 ms, median = 0.0332 ms, percentile(99%) = 0.0371 ms
[12/01/2021-10:15:32] [I] Total Host Walltime: 3.01606 s
[12/01/2021-10:15:32] [I] Total GPU Compute Time: 2.99539 s
[12/01/2021-10:15:32] [I] Explanations of the performance metrics are printed in the verbose logs.
&&&& PASSED TensorRT.trtexec [TensorRT v8201] # /usr/src/tensorrt/bin/trtexec --loadEngine=m.engine
`;

// TensorRT 7.0/7.1 (JetPack 4.4/4.5): per-statistic lines under "Host Latency".
const TRT_7_1 = `&&&& RUNNING TensorRT.trtexec # ./trtexec --loadEngine=m.engine
[06/12/2022-22:34:00] [I] Average on 10 runs - GPU latency: 1.56 ms - Host latency: 1.65 ms (end to end 3.01 ms, enqueue 0.93 ms)
[06/12/2022-22:34:00] [I] Host Latency
[06/12/2022-22:34:00] [I] min: 1.64058 ms (end to end 1.66368 ms)
[06/12/2022-22:34:00] [I] max: 6.2915 ms (end to end 7.65552 ms)
[06/12/2022-22:34:00] [I] mean: 1.66069 ms (end to end 3.00909 ms)
[06/12/2022-22:34:00] [I] median: 1.65601 ms (end to end 3.01636 ms)
[06/12/2022-22:34:00] [I] percentile: 1.67065 ms at 99% (end to end 3.03931 ms at 99%)
[06/12/2022-22:34:00] [I] throughput: 598.2 qps
[06/12/2022-22:34:00] [I] walltime: 3.00461 s
[06/12/2022-22:34:00] [I] Enqueue Time
[06/12/2022-22:34:00] [I] min: 0.9 ms
[06/12/2022-22:34:00] [I] GPU Compute
[06/12/2022-22:34:00] [I] min: 1.5 ms
`;

describe('parseTrtexecPerformance', () => {
  it('reads a TensorRT 10 summary with three percentiles and every timing line', () => {
    const p = parseTrtexecPerformance(TRT_10_3);
    expect(p.format).toBe('summary');
    expect(p.throughputQps).toBe(812.345);
    expect(p.latency).toEqual({
      min: 1.21045, max: 2.74536, mean: 1.29871, median: 1.27393, percentiles: { '90': 1.35107, '95': 1.40234, '99': 1.6272 },
    });
    expect(p.gpuCompute?.mean).toBe(1.2004);
    expect(p.h2d?.percentiles['99']).toBe(0.0899);
    expect(p.d2h?.min).toBe(0.0185547);
    expect(p.enqueue?.median).toBe(0.39209);
    expect(p.endToEnd).toBeUndefined();
    expect(p.totalHostWalltimeS).toBe(3.00242);
    expect(p.totalGpuComputeS).toBe(2.92817);
    expect(trtexecLatencyMs(p)).toEqual({
      min: 1.21045, mean: 1.29871, p50: 1.27393, p90: 1.35107, p95: 1.40234, p99: 1.6272, max: 2.74536, estimated: [],
    });
  });

  it('reads a TensorRT 8.2 summary (only the 99th percentile, plus End-to-End Host Latency)', () => {
    const p = parseTrtexecPerformance(TRT_8_2);
    expect(p.latency.percentiles).toEqual({ '99': 5.16284 });
    expect(p.endToEnd?.mean).toBe(9.69467);
    const l = trtexecLatencyMs(p);
    // p90 and p95 are bounded from above by the printed p99.
    expect(l).toMatchObject({ p50: 4.89648, p90: 5.16284, p95: 5.16284, p99: 5.16284, estimated: ['p90', 'p95'] });
  });

  it('reads the Host Latency block of TensorRT 7.1 and stops at the next block', () => {
    const p = parseTrtexecPerformance(TRT_7_1);
    expect(p.format).toBe('legacy');
    expect(p.latency).toEqual({ min: 1.64058, max: 6.2915, mean: 1.66069, median: 1.65601, percentiles: { '99': 1.67065 } });
    expect(p.endToEnd?.percentiles['99']).toBe(3.03931);
    expect(p.throughputQps).toBe(598.2);
    expect(p.totalHostWalltimeS).toBe(3.00461);
  });

  it('uses the last summary when a log holds several, and accepts lines without the log prefix', () => {
    const two = TRT_8_2 + TRT_10_3.replace(/^\[[^\]]+\] \[I\] /gm, '');
    expect(parseTrtexecPerformance(two).throughputQps).toBe(812.345);
  });

  it('fills every missing percentile with the max when none is printed', () => {
    const p = parseTrtexecPerformance(TRT_8_2.replace(/, percentile\(99%\) = [\d.]+ ms/g, ''));
    expect(trtexecLatencyMs(p)).toMatchObject({ p90: 5.53516, p99: 5.53516, estimated: ['p90', 'p95', 'p99'] });
  });

  it('throws RUNTIME_TRTEXEC_OUTPUT with the tail when there is no summary', () => {
    const out = '&&&& RUNNING TensorRT.trtexec [TensorRT v8601]\n[E] Error[1]: engine deserialization failed\n&&&& FAILED\n';
    let err: unknown;
    try {
      parseTrtexecPerformance(out);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('RUNTIME_TRTEXEC_OUTPUT');
    expect((err as RuntimeError).outputTail).toContain('deserialization failed');
    expect(() => parseTrtexecPerformance(TRT_10_3.replace(/Throughput.*\n/, ''))).toThrow(/lacks Throughput/);
  });
});

describe('TensorRT version of trtexec output', () => {
  it('decodes both numbering schemes', () => {
    expect(trtVersionFromNumber(8201)).toBe('8.2.1');
    expect(trtVersionFromNumber(8601)).toBe('8.6.1');
    expect(trtVersionFromNumber(7103)).toBe('7.1.3');
    expect(trtVersionFromNumber(100300)).toBe('10.3.0');
    expect(trtVersionFromNumber(100712)).toBe('10.7.12');
    expect(() => trtVersionFromNumber(12)).toThrow(RangeError);
  });

  it('reads the banner, else the TensorRT version line', () => {
    expect(parseTrtexecVersion(TRT_10_3)).toBe('10.3.0');
    expect(parseTrtexecVersion(TRT_8_2)).toBe('8.2.1');
    expect(parseTrtexecVersion('&&&& RUNNING TensorRT.trtexec # trtexec\n[I] TensorRT version: 7.1.3\n')).toBe('7.1.3');
    expect(parseTrtexecVersion('hello')).toBeUndefined();
  });
});
