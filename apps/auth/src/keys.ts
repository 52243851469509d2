/**
 * The access-token signing key ring, shared by every auth replica through PostgreSQL.
 *
 * Rotation by kid without downtime: the ring always holds a *pending* key, published in the JWKS from the moment it
 * is created but used for signing only from its `activates_at` (at least `leadMs` later: longer than any
 * verifier's JWKS cache), so every verifier knows a key before the first token signed with it arrives. When a key
 * activates, its predecessor stays published until the last token it signed has expired, then retires.
 * `sync()` (at start and every minute, under an advisory lock) creates the pending key and retirements; which key
 * signs is decided from the clock at each call, so replicas switch together without coordination.
 * Private keys are stored AES-256-GCM encrypted under a key derived from SIGNING_KEY_SECRET.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  generateKeyPairSync,
  hkdfSync,
  type JsonWebKey,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import {
  ACCESS_TOKEN_ALG,
  type AccessTokenAlg,
  type SqlDatabase,
  type VerificationKey,
  verificationKey,
} from "@ndt/kit";
import { calculateJwkThumbprint, type JWK } from "jose";

/** A published verification key (OKP Ed25519: x; EC P-256 keys of older rings: x, y). */
export interface PublicJwk {
  kty: string;
  crv: string;
  x: string;
  y?: string;
  kid: string;
  alg: string;
  use: string;
}

export interface RingKey {
  kid: string;
  alg: AccessTokenAlg;
  publicJwk: PublicJwk;
  /** Imported once: what every verification of this key's tokens uses. */
  verification: VerificationKey;
  privateKey: KeyObject;
  activatesAt: number;
  retiresAt: number | null;
}

export interface KeyRingOptions {
  secret: string;
  rotationMs: number;
  leadMs: number;
  /** Longest access-token life: how long a replaced key stays published. */
  accessTtlMs: number;
  now?: () => number;
}

const LOCK_ID = 4_217_001; // advisory lock of the key ring

type KeyRow = {
  kid: string;
  alg: string;
  public_jwk: PublicJwk;
  private_jwk_enc: string;
  activates_at: Date;
  retires_at: Date | null;
};

export class KeyRing {
  private keys: RingKey[] = [];
  /** `verificationKeys()` result, valid until the next reload or the next retirement time. */
  private verifying: { map: ReadonlyMap<string, VerificationKey>; until: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly aesKey: Buffer;
  readonly now: () => number;

  constructor(
    private readonly db: SqlDatabase,
    private readonly opts: KeyRingOptions,
  ) {
    this.aesKey = Buffer.from(hkdfSync("sha256", opts.secret, "ndt-auth", "signing-key-encryption", 32));
    this.now = opts.now ?? Date.now;
  }

  private encrypt(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.aesKey, iv);
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return [iv, cipher.getAuthTag(), body].map((b) => b.toString("base64url")).join(".");
  }

  private decrypt(enc: string): string {
    const [iv, tag, body] = enc.split(".").map((p) => Buffer.from(p, "base64url"));
    if (!iv || !tag || !body) throw new Error("malformed encrypted key");
    const decipher = createDecipheriv("aes-256-gcm", this.aesKey, iv);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
  }

  private async newKeyRow(activatesAt: number) {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const publicJwk = publicKey.export({ format: "jwk" });
    const kid = await calculateJwkThumbprint(publicJwk as JWK);
    const privateJwk = privateKey.export({ format: "jwk" });
    return [
      kid,
      ACCESS_TOKEN_ALG,
      { ...publicJwk, kid, alg: ACCESS_TOKEN_ALG, use: "sig" },
      this.encrypt(JSON.stringify(privateJwk)),
      new Date(activatesAt),
    ];
  }

  /** Bring the ring up to date in the database (idempotent, one replica at a time), then reload it. */
  async sync(): Promise<void> {
    const now = this.now();
    await this.db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [LOCK_ID]);
      const { rows: all } = await tx.query<{ kid: string; alg: string; activates_at: Date; retires_at: Date | null }>(
        "SELECT kid, alg, activates_at, retires_at FROM signing_keys WHERE retires_at IS NULL OR retires_at > $1 ORDER BY activates_at",
        [new Date(now)],
      );
      // Keys of another algorithm (a ring that signed ES256 before): never used again; a pending one is withdrawn
      // at once, an active one stays published until the last token it signed has expired.
      for (const old of all.filter((r) => r.alg !== ACCESS_TOKEN_ALG && r.retires_at === null)) {
        const retiresAt = old.activates_at.getTime() > now ? now : now + this.opts.accessTtlMs + 60_000;
        await tx.query("UPDATE signing_keys SET retires_at = $2 WHERE kid = $1", [old.kid, new Date(retiresAt)]);
      }
      const rows = all.filter((r) => r.alg === ACCESS_TOKEN_ALG);
      const insert =
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_jwk_enc, activates_at) VALUES ($1, $2, $3, $4, $5)";
      let active = rows.filter((r) => r.activates_at.getTime() <= now);
      if (active.length === 0) {
        // bootstrap: no token exists yet, so the first key may sign at once
        const row = await this.newKeyRow(now);
        await tx.query(insert, row);
        active = [{ kid: String(row[0]), alg: ACCESS_TOKEN_ALG, activates_at: new Date(now), retires_at: null }];
      }
      const current = active[active.length - 1]!;
      // predecessors of the current key: published until their last token expired
      for (const old of active.slice(0, -1)) {
        if (old.retires_at === null) {
          await tx.query("UPDATE signing_keys SET retires_at = $2 WHERE kid = $1", [
            old.kid,
            new Date(current.activates_at.getTime() + this.opts.accessTtlMs + 60_000),
          ]);
        }
      }
      if (!rows.some((r) => r.activates_at.getTime() > now)) {
        const at = Math.max(current.activates_at.getTime() + this.opts.rotationMs, now + this.opts.leadMs);
        await tx.query(insert, await this.newKeyRow(at));
      }
    });
    await this.reload();
  }

  private async reload(): Promise<void> {
    const { rows } = await this.db.query<KeyRow>(
      "SELECT kid, alg, public_jwk, private_jwk_enc, activates_at, retires_at FROM signing_keys WHERE retires_at IS NULL OR retires_at > $1 ORDER BY activates_at",
      [new Date(this.now())],
    );
    const keys: RingKey[] = [];
    for (const r of rows) {
      const verification = verificationKey(r.public_jwk);
      if (!verification || verification.alg !== r.alg)
        throw new Error(`signing key ${r.kid} is not a usable ${r.alg} key`);
      keys.push({
        kid: r.kid,
        alg: verification.alg,
        publicJwk: r.public_jwk,
        verification,
        privateKey: createPrivateKey({ key: JSON.parse(this.decrypt(r.private_jwk_enc)) as JsonWebKey, format: "jwk" }),
        activatesAt: r.activates_at.getTime(),
        retiresAt: r.retires_at?.getTime() ?? null,
      });
    }
    this.keys = keys;
    this.verifying = undefined;
  }

  private published(): RingKey[] {
    const now = this.now();
    return this.keys.filter((k) => k.retiresAt === null || k.retiresAt > now);
  }

  /** The key that signs now: the latest activated one. */
  signingKey(): RingKey {
    const now = this.now();
    const active = this.published().filter((k) => k.activatesAt <= now);
    const key = active[active.length - 1];
    if (!key) throw new Error("key ring has no active signing key (sync() not run?)");
    return key;
  }

  /** Verification keys: every published key (the map is rebuilt only when the published set can change). */
  verificationKeys(): ReadonlyMap<string, VerificationKey> {
    const now = this.now();
    if (!this.verifying || now >= this.verifying.until) {
      const published = this.published();
      const next = Math.min(...published.map((k) => k.retiresAt ?? Number.POSITIVE_INFINITY));
      this.verifying = { map: new Map(published.map((k) => [k.kid, k.verification])), until: next };
    }
    return this.verifying.map;
  }

  /** The JWKS document: current, previous (until retired) and next keys. */
  jwks(): { keys: PublicJwk[] } {
    return { keys: this.published().map((k) => k.publicJwk) };
  }

  /** Sync periodically (rotation, retirement, keys made by other replicas). */
  start(intervalMs: number, onError: (err: unknown) => void): void {
    this.timer = setInterval(() => this.sync().catch(onError), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
