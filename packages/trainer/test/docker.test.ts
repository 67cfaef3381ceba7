import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// No Docker engine runs here: check what can be checked without building.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dockerfiles = readdirSync(join(ROOT, 'docker'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(ROOT, 'docker', d.name, 'Dockerfile')))
  .map((d) => join('docker', d.name, 'Dockerfile'));

/** Dockerfile instructions: comment lines dropped (as Docker does, even inside a continuation), continuations joined. */
function instructions(text: string): string[] {
  const body = text.split('\n').filter((l) => !l.trim().startsWith('#')).join('\n');
  return body.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter(Boolean);
}

describe.each(dockerfiles)('%s', (file) => {
  const lines = instructions(readFileSync(join(ROOT, file), 'utf8'));

  it('starts FROM an image and uses only known instructions', () => {
    expect(lines[0]).toMatch(/^FROM \S+/);
    const known = /^(FROM|RUN|CMD|LABEL|EXPOSE|ENV|ADD|COPY|ENTRYPOINT|VOLUME|USER|WORKDIR|ARG|ONBUILD|STOPSIGNAL|HEALTHCHECK|SHELL)\b/;
    for (const l of lines) expect(l).toMatch(known);
  });

  it('copies only files that exist in the repository (build context = repository root)', () => {
    for (const l of lines.filter((x) => x.startsWith('COPY '))) {
      const args = l.split(/\s+/).slice(1).filter((a) => !a.startsWith('--'));
      for (const src of args.slice(0, -1)) expect(existsSync(join(ROOT, src)), `${file}: ${src}`).toBe(true);
    }
  });

  it('has an exec-form ENTRYPOINT or CMD', () => {
    expect(lines.some((l) => /^(ENTRYPOINT|CMD) \[/.test(l))).toBe(true);
  });
});
