import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/bin/kd-fleet.ts', 'src/simulator/simulator-child.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // The dashboard's static files sit beside the bundle (serveDashboard looks in ./dashboard/).
  onSuccess: 'rm -rf dist/dashboard && cp -r src/dashboard/public dist/dashboard',
});
