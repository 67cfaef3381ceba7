import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    // Under CI, also write the results as JSON so .ci/run can print a plain "N passed, N failed" line.
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.ci/vitest-results.json' }]] : ['default'],
    hookTimeout: 120_000,
    // expect.poll waits on a live system (a browser, brokers, agents); its 1 s default is too short on a busy 2-core runner.
    expect: { poll: { timeout: 30_000 } },
  },
});
