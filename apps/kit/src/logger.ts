/**
 * The logging an adapter or a background loop needs: a subset of pino's (and so of Fastify's `app.log`), so that
 * adapters take a service's logger without depending on pino or Fastify themselves.
 */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** What the connection adapters use: they only warn (reconnects, dropped connections). */
export type WarnLogger = Pick<Logger, "warn">;
