import { mkdir } from 'node:fs/promises';
import { writeFileDurable } from '@kd-edge/core/util';
import { join } from 'node:path';
import { HARDWARE_PROFILES } from './hardware-profiles.js';

/**
 * Writes the Jetson fact files of each Jetson profile under `dir/<profile>/` (`device-tree-model`, with the NUL a real
 * device tree ends in, and `nv_tegra_release`), which the simulated agents read instead of the host's. Atomic, so
 * several simulator processes may write the same folder at once.
 */
export async function writeProfileFacts(dir: string): Promise<void> {
  for (const profile of Object.values(HARDWARE_PROFILES)) {
    if (profile.jetson === undefined) continue;
    const folder = join(dir, profile.name);
    await mkdir(folder, { recursive: true });
    await writeFileDurable(join(folder, 'device-tree-model'), `${profile.jetson.deviceTreeModel}\0`);
    await writeFileDurable(join(folder, 'nv_tegra_release'), `${profile.jetson.tegraRelease}\n`);
  }
}

