/**
 * Every service's migrations, applied in one place before the services roll out. Each service keeps its own
 * history table (kit `migrationsTableFor`), so their histories never interleave.
 */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import type { SqlDatabase } from "@ndt/kit";

export interface ServiceMigrations {
  service: string;
  dir: string;
}

/** `<appsDir>/<service>/migrations` folders, by service name (the order they are applied in). */
export function findMigrations(appsDir: string): ServiceMigrations[] {
  return readdirSync(appsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(appsDir, entry.name, "migrations")))
    .map((entry) => ({ service: entry.name, dir: path.join(appsDir, entry.name, "migrations") }))
    .sort((a, b) => a.service.localeCompare(b.service));
}

/** Apply them all; returns what each service applied (empty lists on a re-run). */
export async function migrateAll(
  db: SqlDatabase,
  services: readonly ServiceMigrations[],
): Promise<Record<string, string[]>> {
  const applied: Record<string, string[]> = {};
  for (const { service, dir } of services) applied[service] = await db.migrate(dir);
  return applied;
}
