import { HttpConfig, loadConfig, PostgresConfig } from "@ndt/kit";
import { type Static, Type } from "@sinclair/typebox";

export const MigrationsConfigSchema = Type.Object({
  ...PostgresConfig,
  LOG_LEVEL: HttpConfig.LOG_LEVEL,
});
export type MigrationsConfig = Static<typeof MigrationsConfigSchema>;

export function loadMigrationsConfig(env: Record<string, string | undefined> = process.env): MigrationsConfig {
  return loadConfig(MigrationsConfigSchema, env);
}
