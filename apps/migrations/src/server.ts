/**
 * The migrations Job's entry (the image runs `node dist/server.js`): apply every service's migrations, exit 0; exit 1
 * with the reason on any failure, so Kubernetes retries (backoffLimit) and Pulumi's rollout waits or fails.
 *
 * The SQL lives with each service (apps/<service>/migrations). Here it is found beside this app: in the repository
 * the sibling apps, in the image the folders docker/service.Dockerfile copies in for APP=migrations.
 */
import { fileURLToPath } from "node:url";
import { PgDatabase } from "@ndt/kit";
import { pino } from "pino";
import { loadMigrationsConfig, type MigrationsConfig } from "./config.js";
import { findMigrations, migrateAll } from "./migrate.js";

const APPS_DIR = fileURLToPath(new URL("../../", import.meta.url));

let config: MigrationsConfig;
try {
  config = loadMigrationsConfig();
} catch (err) {
  // a ConfigError names every bad variable: print it as is
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
}
const log = pino({ level: config.LOG_LEVEL, base: { service: "migrations" } });
const db = new PgDatabase(config, log);
try {
  const services = findMigrations(APPS_DIR);
  if (services.length === 0) throw new Error(`no apps/<service>/migrations folders under ${APPS_DIR}`);
  const applied = await migrateAll(db, services);
  log.info({ applied }, "migrations complete");
  process.exitCode = 0;
} catch (err) {
  log.error({ err }, "migrations failed");
  process.exitCode = 1;
} finally {
  await db.close().catch(() => undefined);
}
