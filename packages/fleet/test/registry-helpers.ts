// Shared by the db-, registry-, artifacts- and devices- tests: temporary data directories, a migrated
// database, signing keys and real signed packages (built as kd-trainer package does).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, packDirectory, type KeyPair } from '@kd-edge/core';
import type Database from 'better-sqlite3';
import { coreMigrations } from '../src/db/core-migrations.js';
import { migrate } from '../src/db/migrate.js';
import { openDatabase } from '../src/db/open-database.js';
import { makeTestPackage, type TestPackage } from '../../edge-agent/test/store-helpers.js';

export { makeTestPackage, type TestPackage };

/** A temporary directory, removed by `cleanup()`. */
export async function tempDir(prefix = 'kd-fleet-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A database file under `dir` with the core migrations applied. */
export function migratedDb(dir: string, file = 'fleet.db'): Database.Database {
  const db = openDatabase(join(dir, file));
  migrate(db, coreMigrations);
  return db;
}

let keys: { trusted: KeyPair; other: KeyPair } | undefined;

/** Two Ed25519 key pairs made once per test file: the fleet's trusted one, and a stranger's. */
export function testKeys(): { trusted: KeyPair; other: KeyPair } {
  keys ??= { trusted: generateKeyPair(), other: generateKeyPair() };
  return keys;
}

/** Rewrite a built package folder's manifest with `edit` and pack it again into `<dir>.tar`, returning the tar path. */
export async function repackWithManifest(pkg: TestPackage, edit: (manifest: Record<string, unknown>) => void, tar = `${pkg.dir}-edited.tar`): Promise<string> {
  const path = join(pkg.dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  edit(manifest);
  await writeFile(path, JSON.stringify(manifest, null, 2));
  await packDirectory(pkg.dir, tar);
  return tar;
}
