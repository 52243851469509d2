/**
 * Configuration from the environment, validated once at start.
 *
 * A service declares its variables as a TypeBox object schema (names are the env variable names). `loadConfig`
 * applies defaults, converts strings ("8080" → 8080, "true" → true), then checks everything and throws ONE
 * `ConfigError` listing every bad or missing variable by name, so an operator fixes them all in one go.
 */
import { type Static, type TObject, type TProperties, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

export class ConfigError extends Error {
  constructor(readonly problems: readonly { variable: string; reason: string }[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p.variable}: ${p.reason}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** An IPv4 or IPv6 address, optionally with a prefix length (the parser itself rejects a bad octet or group). */
const TRUSTED_ADDRESS = String.raw`(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?:/\d{1,3})?`;

/** Variables every HTTP service understands. Spread into a service's own schema. */
export const HttpConfig = {
  HOST: Type.String({ default: "0.0.0.0", description: "interface to listen on" }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  LOG_LEVEL: Type.Union(
    ["fatal", "error", "warn", "info", "debug", "trace", "silent"].map((l) => Type.Literal(l)),
    { default: "info" },
  ),
  /** Comma-separated origins allowed by CORS; empty = no cross-origin access. */
  CORS_ORIGINS: Type.String({ default: "" }),
  /** Largest accepted request body, bytes. */
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1, default: 1_048_576 }),
  /** Hard bound on graceful shutdown (drain) before the process exits anyway. */
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 0, default: 10_000 }),
  /** Sampling interval of the event-loop delay metrics. Each sample overstates the delay by up to this much
   * (Node records the whole interval between timer ticks), so measurements use 1. */
  EVENT_LOOP_RESOLUTION_MS: Type.Integer({ minimum: 1, default: 10 }),
  /** Pause between failing readiness and closing the listener, so load balancers stop routing first. */
  SHUTDOWN_DELAY_MS: Type.Integer({ minimum: 0, default: 0 }),
  /**
   * The proxies in front of this service whose x-forwarded-for is trusted (Fastify `trustProxy`): comma-separated
   * addresses or CIDR blocks; "" trusts none. Every service sits behind one: the ingress before the gateway, the
   * gateway before the rest. Without it a service sees its proxy's address as every client's (per-IP limits).
   */
  TRUST_PROXY: Type.String({
    default: "",
    pattern: `^(${TRUSTED_ADDRESS}(\\s*,\\s*${TRUSTED_ADDRESS})*)?$`,
    description: "comma-separated IP addresses or CIDR blocks",
  }),
};

/**
 * What an integer or number variable may look like. TypeBox's conversion is lenient ("2.5" → 2 and "1e3" → 1 for an
 * integer, "0x10" → 0 for a number): text that is not a plain decimal stays text, so it is reported, not truncated.
 */
const NUMERIC_TEXT: Record<string, RegExp> = {
  integer: /^[+-]?\d+$/,
  number: /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/,
};

/**
 * Validate `env` against `schema` and return the typed config.
 * @throws ConfigError naming every variable that is missing or invalid.
 */
export function loadConfig<P extends TProperties>(
  schema: TObject<P>,
  env: Record<string, string | undefined> = process.env,
): Static<TObject<P>> {
  const picked: Record<string, unknown> = {};
  const notDecimal: Record<string, string> = {};
  for (const [key, property] of Object.entries(schema.properties)) {
    const raw = env[key];
    if (raw === undefined || raw === "") continue;
    picked[key] = raw;
    const pattern = NUMERIC_TEXT[String(property.type)];
    if (pattern && !pattern.test(raw.trim())) notDecimal[key] = raw;
  }
  // converted, then such text put back as text, for the validation below to name
  const value = Object.assign(Value.Convert(schema, Value.Default(schema, picked)) as object, notDecimal);
  const problems = [...Value.Errors(schema, value)].map((e) => ({
    variable: e.path.replace(/^\//, "").split("/")[0] || "(root)",
    reason:
      e.value === undefined
        ? "is required"
        : // a described variable says what it must be, not which regex it failed
          `${typeof e.schema.description === "string" ? `must be ${e.schema.description}` : e.message} (got ${JSON.stringify(e.value)})`,
  }));
  if (problems.length > 0) {
    // one line per variable: the first reason is the useful one
    const seen = new Set<string>();
    throw new ConfigError(problems.filter((p) => !seen.has(p.variable) && seen.add(p.variable)));
  }
  return value as Static<TObject<P>>;
}

/** Split a comma-separated list, dropping blanks. */
export function csv(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
