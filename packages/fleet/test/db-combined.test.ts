import { describe, expect, it } from 'vitest';
import { coreMigrations } from '../src/db/core-migrations.js';
import { migrate } from '../src/db/migrate.js';
import { openDatabase } from '../src/db/open-database.js';
import { ROLLOUT_MIGRATIONS } from '../src/rollout/rollout-migrations.js';

describe('core and rollout migrations together', () => {
  it('apply in one call, without clashing ids or tables', () => {
    const db = openDatabase(':memory:');
    const all = [...coreMigrations, ...ROLLOUT_MIGRATIONS];
    expect(migrate(db, all).applied).toEqual(all.map((m) => m.id));
    expect(migrate(db, all).applied).toEqual([]);
    db.close();
  });
});
