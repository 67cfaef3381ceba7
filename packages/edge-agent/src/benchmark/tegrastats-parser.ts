/** Load and clock of one unit (CPU core, EMC, GPU). */
export interface TegraLoad {
  loadPct: number;
  /** Clock in MHz; the GPU of L4T 34+ prints a list (one per GPC), older ones one value; absent when not printed. */
  freqMhz?: number;
}

/** A power rail's instantaneous and average draw in mW. */
export interface TegraRail {
  currentMw: number;
  averageMw: number;
}

/** One tegrastats line, parsed (SPECS 7). Fields a line does not print are absent. */
export interface TegrastatsSample {
  /** The `MM-DD-YYYY HH:MM:SS` prefix of L4T 34 and later. */
  timestamp?: string;
  ram?: { usedMb: number; totalMb: number; lfbBlocks?: number; lfbBlockMb?: number };
  swap?: { usedMb: number; totalMb: number; cachedMb: number };
  /** One entry per core in order; `null` for a core that is `off`. */
  cpus: (TegraLoad | null)[];
  emc?: TegraLoad;
  gpu?: { loadPct: number; freqMhz?: number[] };
  /** Temperature per zone (°C); absent sensors (−256C) are left out. */
  tempC: Record<string, number>;
  /** Power per rail. */
  powerMw: Record<string, TegraRail>;
  /** Instantaneous board input power: the VDD_IN / POM_5V_IN / VIN_SYS_5V0 rail, else the sum of all rails. */
  totalPowerMw?: number;
}

/** Rails that measure the whole module's input; the first present one is the total power. */
export const INPUT_POWER_RAILS: readonly string[] = ['VDD_IN', 'POM_5V_IN', 'VIN_SYS_5V0'];

const UNIT_TO_MB: Record<string, number> = { k: 1 / 1024, K: 1 / 1024, M: 1, G: 1024 };

function toMb(value: string, unit: string | undefined): number {
  return Number(value) * (UNIT_TO_MB[unit ?? 'M'] ?? 1);
}

const RAM = /\bRAM (\d+)\/(\d+)([kKMG])B ?(?:\(lfb (\d+)x(\d+)([kKMG])B\))?/;
const SWAP = /\bSWAP (\d+)\/(\d+)([kKMG])B ?\(cached (\d+)([kKMG])B\)/;
const CPU = /\bCPU \[(.*?)\]/;
const EMC = /\bEMC_FREQ (\d+)%(?:@(\d+))?/;
const GPU = /\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?/;
const TEMP = /\b(\w+)@(-?\d+(?:\.\d+)?)C\b/g;
const POWER = /\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?\/(\d+)(?:mW)?\b/g;
const STAMP = /^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}) /;

/**
 * Parses one line of `tegrastats` (Nano L4T 32 through Orin L4T 36): RAM, SWAP, CPU cores, EMC, GPU load
 * (`GR3D_FREQ 3%`, `3%@921` or `3%@[921,921]`), temperatures and power rails with or without `mW`.
 * Returns undefined for a line that is not a tegrastats sample (no RAM figure).
 * @example parseTegrastatsLine('RAM 1923/3964MB (lfb 2x2MB) … POM_5V_IN 1750/1628')?.totalPowerMw // 1750
 */
export function parseTegrastatsLine(line: string): TegrastatsSample | undefined {
  if (typeof line !== 'string') throw new TypeError('line must be a string');
  const ram = RAM.exec(line);
  if (!ram) return undefined;
  const sample: TegrastatsSample = { cpus: [], tempC: {}, powerMw: {} };
  const stamp = STAMP.exec(line);
  if (stamp) sample.timestamp = stamp[1]!;
  sample.ram = { usedMb: toMb(ram[1]!, ram[3]), totalMb: toMb(ram[2]!, ram[3]) };
  if (ram[4] !== undefined) {
    sample.ram.lfbBlocks = Number(ram[4]);
    sample.ram.lfbBlockMb = toMb(ram[5]!, ram[6]);
  }
  const swap = SWAP.exec(line);
  if (swap) sample.swap = { usedMb: toMb(swap[1]!, swap[3]), totalMb: toMb(swap[2]!, swap[3]), cachedMb: toMb(swap[4]!, swap[5]) };
  const cpu = CPU.exec(line);
  if (cpu) {
    sample.cpus = cpu[1]!.split(',').map((item) => {
      const m = /^(\d+)%(?:@(\d+))?$/.exec(item.trim());
      if (!m) return null;
      return m[2] === undefined ? { loadPct: Number(m[1]) } : { loadPct: Number(m[1]), freqMhz: Number(m[2]) };
    });
  }
  const emc = EMC.exec(line);
  if (emc) sample.emc = emc[2] === undefined ? { loadPct: Number(emc[1]) } : { loadPct: Number(emc[1]), freqMhz: Number(emc[2]) };
  const gpu = GPU.exec(line);
  if (gpu) {
    sample.gpu = { loadPct: Number(gpu[1]) };
    if (gpu[2] !== undefined) sample.gpu.freqMhz = gpu[2].split(',').filter((f) => f !== '').map(Number);
  }
  for (const m of line.matchAll(TEMP)) {
    const t = Number(m[2]);
    // −256C is how tegrastats prints a sensor that is not there.
    if (t <= -256) continue;
    sample.tempC[m[1]!] = t;
  }
  for (const m of line.matchAll(POWER)) {
    const name = m[1]!;
    // RAM/SWAP/IRAM figures end in a unit and never match; this also guards future `X n/m` fields.
    if (name === 'RAM' || name === 'SWAP' || name === 'IRAM') continue;
    sample.powerMw[name] = { currentMw: Number(m[2]), averageMw: Number(m[3]) };
  }
  const rails = Object.keys(sample.powerMw);
  const input = INPUT_POWER_RAILS.find((r) => r in sample.powerMw);
  if (input !== undefined) sample.totalPowerMw = sample.powerMw[input]!.currentMw;
  else if (rails.length > 0) sample.totalPowerMw = rails.reduce((a, r) => a + sample.powerMw[r]!.currentMw, 0);
  return sample;
}
