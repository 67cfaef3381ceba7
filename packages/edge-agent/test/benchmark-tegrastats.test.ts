import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTegrastatsLine } from '../src/benchmark/tegrastats-parser.js';
import { TegrastatsMonitor, locateTegrastats, summarizeTegrastats } from '../src/benchmark/tegrastats-monitor.js';

const STANDIN = fileURLToPath(new URL('./fixtures/tegrastats-standin.mjs', import.meta.url));

// SPECS 7 samples, then lines in the formats of other boards and L4T releases.
const NANO_L4T32 =
  'RAM 1923/3964MB (lfb 2x2MB) SWAP 191/1982MB (cached 6MB) IRAM 0/252kB(lfb 252kB) CPU [5%@1224,4%@1224,3%@1224,6%@1224] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@37C CPU@40C PMIC@50C GPU@40C AO@45C thermal@40C POM_5V_IN 1750/1628 POM_5V_GPU 0/0 POM_5V_CPU 366/406';
const NANO_NO_FREQ =
  'RAM 1766/3964MB (lfb 197x4MB) SWAP 0/2048MB (cached 0MB) CPU [24%@1224,15%@1224,13%@1224,10%@1224] EMC_FREQ 0% GR3D_FREQ 0% PLL@21C CPU@25C PMIC@100C GPU@23.5C AO@33.5C thermal@24.5C POM_5V_IN 2545/2547 POM_5V_GPU 0/0 POM_5V_CPU 549/529';
const AGX_ORIN_L4T35 =
  '05-09-2026 18:42:06 RAM 18207/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) CPU [14%@2188,5%@2112,off,off] EMC_FREQ 3%@2133 GR3D_FREQ 0%@[0,0] NVENC 79%@166 NVDEC off APE 174 cpu@52.562C soc2@48.437C tj@52.562C soc1@49.656C VDD_GPU_SOC 2412mW/2412mW VDD_CPU_CV 1607mW/1607mW VIN_SYS_5V0 4707mW/4707mW';
const ORIN_NANO_L4T36 =
  '11-28-2026 09:15:32 RAM 2297/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [1%@729,0%@729,2%@729,0%@729,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 37%@[305] NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@47.625C soc2@46.5C soc0@46.218C gpu@47.468C tj@47.625C soc1@46.156C VDD_IN 4404mW/4404mW VDD_CPU_GPU_CV 481mW/481mW VDD_SOC 1402mW/1402mW';
const XAVIER_NX_L4T34 =
  'RAM 2448/6854MB (lfb 5x4MB) SWAP 0/3427MB (cached 0MB) CPU [2%@1190,1%@1190,1%@1190,0%@1190,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 11%@[305,305] VIC_FREQ 115 APE 150 AUX@39C CPU@40.5C thermal@39.65C AO@39C GPU@39C CV0@-256C CV1@-256C Tdiode@42.75C VDD_IN 3866mW/3866mW VDD_CPU_GPU_CV 432mW/432mW VDD_SOC 1154mW/1154mW';
// AGX Xavier on L4T 32: rails without VDD_ prefixes or units and no input rail.
const AGX_XAVIER_L4T32 =
  'RAM 3045/31919MB (lfb 6715x4MB) SWAP 0/15960MB (cached 0MB) CPU [3%@1190,2%@1190,1%@1190,1%@1190,0%@1190,0%@1190,0%@1190,0%@1190] EMC_FREQ 0%@2133 GR3D_FREQ 0%@1377 APE 150 MTS fg 0% bg 0% AO@40C GPU@39.5C Tdiode@43C AUX@39.5C CPU@41.5C thermal@40.3C GPU 0/0 CPU 311/311 SOC 933/933 CV 0/0 VDDRQ 155/155 SYS5V 1782/1782';

describe('parseTegrastatsLine', () => {
  it('parses the Nano L4T 32 line of SPECS 7', () => {
    const s = parseTegrastatsLine(NANO_L4T32)!;
    expect(s.timestamp).toBeUndefined();
    expect(s.ram).toEqual({ usedMb: 1923, totalMb: 3964, lfbBlocks: 2, lfbBlockMb: 2 });
    expect(s.swap).toEqual({ usedMb: 191, totalMb: 1982, cachedMb: 6 });
    expect(s.cpus).toEqual(Array.from({ length: 4 }, (_, i) => ({ loadPct: [5, 4, 3, 6][i], freqMhz: 1224 })));
    expect(s.emc).toEqual({ loadPct: 0, freqMhz: 1600 });
    expect(s.gpu).toEqual({ loadPct: 0, freqMhz: [76] });
    expect(s.tempC).toEqual({ PLL: 37, CPU: 40, PMIC: 50, GPU: 40, AO: 45, thermal: 40 });
    expect(s.powerMw).toEqual({
      POM_5V_IN: { currentMw: 1750, averageMw: 1628 },
      POM_5V_GPU: { currentMw: 0, averageMw: 0 },
      POM_5V_CPU: { currentMw: 366, averageMw: 406 },
    });
    expect(s.totalPowerMw).toBe(1750);
  });

  it('parses EMC_FREQ and GR3D_FREQ without @freq', () => {
    const s = parseTegrastatsLine(NANO_NO_FREQ)!;
    expect(s.gpu).toEqual({ loadPct: 0 });
    expect(s.emc).toEqual({ loadPct: 0 });
    expect(s.tempC.GPU).toBe(23.5);
    expect(s.totalPowerMw).toBe(2545);
  });

  it('parses the Xavier/Orin shape of SPECS 7: timestamp, bracketed GPU clocks, mW rails, off cores', () => {
    const s = parseTegrastatsLine(AGX_ORIN_L4T35)!;
    expect(s.timestamp).toBe('05-09-2026 18:42:06');
    expect(s.cpus).toEqual([{ loadPct: 14, freqMhz: 2188 }, { loadPct: 5, freqMhz: 2112 }, null, null]);
    expect(s.gpu).toEqual({ loadPct: 0, freqMhz: [0, 0] });
    expect(s.tempC).toEqual({ cpu: 52.562, soc2: 48.437, tj: 52.562, soc1: 49.656 });
    expect(Object.keys(s.powerMw)).toEqual(['VDD_GPU_SOC', 'VDD_CPU_CV', 'VIN_SYS_5V0']);
    expect(s.totalPowerMw).toBe(4707);
  });

  it('parses Orin Nano (L4T 36) with VDD_IN as the total', () => {
    const s = parseTegrastatsLine(ORIN_NANO_L4T36)!;
    expect(s.gpu).toEqual({ loadPct: 37, freqMhz: [305] });
    expect(s.cpus.filter((c) => c === null)).toHaveLength(2);
    expect(s.powerMw.VDD_CPU_GPU_CV).toEqual({ currentMw: 481, averageMw: 481 });
    expect(s.totalPowerMw).toBe(4404);
    expect(s.tempC.gpu).toBe(47.468);
  });

  it('drops absent sensors (-256C) on Xavier NX', () => {
    const s = parseTegrastatsLine(XAVIER_NX_L4T34)!;
    expect(s.tempC).not.toHaveProperty('CV0');
    expect(s.tempC).not.toHaveProperty('CV1');
    expect(s.tempC.Tdiode).toBe(42.75);
    expect(s.gpu).toEqual({ loadPct: 11, freqMhz: [305, 305] });
    expect(s.totalPowerMw).toBe(3866);
  });

  it('sums the rails when there is no input rail (AGX Xavier, L4T 32)', () => {
    const s = parseTegrastatsLine(AGX_XAVIER_L4T32)!;
    expect(s.cpus).toHaveLength(8);
    expect(s.gpu).toEqual({ loadPct: 0, freqMhz: [1377] });
    expect(Object.keys(s.powerMw)).toEqual(['GPU', 'CPU', 'SOC', 'CV', 'VDDRQ', 'SYS5V']);
    expect(s.totalPowerMw).toBe(0 + 311 + 933 + 0 + 155 + 1782);
  });

  it('returns undefined for lines that are not samples', () => {
    expect(parseTegrastatsLine('')).toBeUndefined();
    expect(parseTegrastatsLine('tegrastats: permission denied')).toBeUndefined();
  });
});

describe('summarizeTegrastats', () => {
  it('averages rails, zones, GPU load and RAM', () => {
    const s = summarizeTegrastats([parseTegrastatsLine(NANO_L4T32)!, parseTegrastatsLine(NANO_NO_FREQ)!]);
    expect(s.samples).toBe(2);
    expect(s.totalPowerMw).toBe((1750 + 2545) / 2);
    expect(s.powerMw.POM_5V_CPU).toBe((366 + 549) / 2);
    expect(s.tempC.GPU).toBe((40 + 23.5) / 2);
    expect(s.gpuLoadPct).toBe(0);
    expect(s.ramUsedMb).toBe((1923 + 1766) / 2);
    expect(summarizeTegrastats([])).toEqual({ samples: 0, powerMw: {}, tempC: {} });
  });
});

describe('TegrastatsMonitor', () => {
  afterEach(() => {
    delete process.env.KD_TEGRASTATS_STANDIN_KIND;
  });

  it('is undefined (not an error) where tegrastats is absent', async () => {
    expect(await locateTegrastats({ envPath: '' })).toBeUndefined();
    expect(await TegrastatsMonitor.start({ path: '/nonexistent/tegrastats' })).toBeUndefined();
  });

  it('collects samples at the interval from a stand-in and stops it cleanly', async () => {
    process.env.KD_TEGRASTATS_STANDIN_KIND = 'orin';
    const mon = await TegrastatsMonitor.start({ path: STANDIN, intervalMs: 20 });
    expect(mon).toBeDefined();
    const exits: unknown[] = [];
    mon!.on('exit', (code) => exits.push(code));
    await new Promise<void>((resolve) => {
      const onSample = (): void => {
        if (mon!.samples.length >= 4) {
          mon!.off('sample', onSample);
          resolve();
        }
      };
      mon!.on('sample', onSample);
    });
    const summary = await mon!.stop();
    expect(summary.samples).toBeGreaterThanOrEqual(4);
    expect(summary.samples).toBe(mon!.samples.length);
    expect(Object.keys(summary.powerMw).sort()).toEqual(['VDD_CPU_GPU_CV', 'VDD_IN', 'VDD_SOC']);
    expect(summary.totalPowerMw).toBeGreaterThanOrEqual(4400);
    expect(summary.totalPowerMw).toBeLessThanOrEqual(4600);
    expect(summary.tempC).not.toHaveProperty('cv0');
    expect(summary.gpuLoadPct).toBeGreaterThanOrEqual(0);
    expect(exits).toEqual([]);
    // Stopping twice returns the same summary.
    expect(await mon!.stop()).toEqual(summary);
  });
});
