import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest } from '@kd-edge/core/package';
import { artifactPath } from '../artifacts/artifact-path.js';
import type { PackageRecord } from '../registry/package-record.js';
import { ApiError } from './api-error.js';
import { ok, type ApiRouteHandler } from './api-route.js';
import { writeBodyToFile } from './file-body.js';
import type { Router } from './router.js';

/** A package as the API lists it: the record (with its role) without the manifest or the server's file path, plus its download path. */
export type PackageSummary = Omit<PackageRecord, 'manifest' | 'manifestJson' | 'path'> & { url: string };

/** A package as the API shows it alone: the summary with its parsed manifest. */
export type PackageDetail = PackageSummary & { manifest: Manifest };

/** The listed form of a package record. */
export function packageSummary(r: PackageRecord): PackageSummary {
  return {
    name: r.name, version: r.version, role: r.role, sha256: r.sha256, size: r.size, pushedAt: r.pushedAt, keyId: r.keyId,
    origin: r.origin, promotedAt: r.promotedAt, url: artifactPath(r.name, r.version),
  };
}

/** The detailed form of a package record. */
export function packageDetail(r: PackageRecord): PackageDetail {
  return { ...packageSummary(r), manifest: r.manifest };
}

const listModels: ApiRouteHandler = ({ ctx }) => ok(ctx.registry.list().map(packageSummary));

const getModel: ApiRouteHandler = ({ ctx, params }) => {
  const record = ctx.registry.get(params.name!, params.version!);
  if (record === undefined) throw new ApiError('FLEET_NOT_FOUND', `no package ${params.name}@${params.version} in the registry`);
  return ok(packageDetail(record));
};

const pushModel: ApiRouteHandler = async ({ ctx, req, limits }) => {
  // Spool to disk: the registry verifies a file, and a package may be far larger than memory should hold.
  const dir = await mkdtemp(join(limits.tempDir, 'kd-fleet-upload-'));
  try {
    const tar = join(dir, 'package.tar');
    await writeBodyToFile(req, tar, limits.packageLimit, 'the package upload');
    const record = await ctx.pushPackage(tar);
    return { status: 201, body: packageDetail(record) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
};

/** Add the model routes: list, show one, and push a signed package `.tar` (the request body). */
export function addModelRoutes(router: Router<ApiRouteHandler>): void {
  router
    .add('GET', '/api/models', false, listModels)
    .add('POST', '/api/models', true, pushModel)
    .add('GET', '/api/models/:name/:version', false, getModel);
}
