/**
 * Refresh-token sessions in the key-value store (Redis).
 *
 * A login starts a *family* (its id is the access tokens' `sid`). Each refresh token is 256 random bits, given to
 * the client once and stored only as its SHA-256, pointing at its family. A refresh spends the token (an atomic
 * swap marks it spent, keeping its expiry) and issues the next one in the same family. Presenting a spent token
 * again means it leaked: the whole family is revoked (its refresh tokens die with the family record, its access
 * tokens through `SessionRevocations`).
 *
 * A refresh that raced a revocation (the same token presented twice at once, or a refresh during a logout) renews
 * the family record after checking it. The access-token revocation (`SessionRevocations`, kept an access lifetime
 * plus a minute, far past any such race) is written before the record is deleted and read after it is renewed: a
 * renewal that finds it is undone.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { KeyValueStore, SessionRevocations } from "@ndt/kit";

type TokenRecord = { f: string; u: string; s: 0 | 1 };

export type RotateResult =
  | { ok: true; sid: string; userId: string; refreshToken: string }
  | { ok: false; reason: "unknown" | "reused" | "revoked" };

const hashToken = (token: string) => createHash("sha256").update(token).digest("base64url");

export class SessionStore {
  constructor(
    private readonly store: KeyValueStore,
    private readonly revocations: SessionRevocations,
    private readonly refreshTtlMs: number,
  ) {}

  private async putToken(sid: string, userId: string): Promise<string> {
    const token = randomBytes(32).toString("base64url");
    const record: TokenRecord = { f: sid, u: userId, s: 0 };
    await this.store.set(`rt:${hashToken(token)}`, JSON.stringify(record), { ttlMs: this.refreshTtlMs });
    return token;
  }

  /** A new session (token family) for a user. */
  async create(userId: string): Promise<{ sid: string; refreshToken: string }> {
    const sid = randomUUID();
    await Promise.all([
      this.store.set(`fam:${sid}`, userId, { ttlMs: this.refreshTtlMs }),
      this.store.addToSet(`user:${userId}:fams`, sid, this.refreshTtlMs),
    ]);
    return { sid, refreshToken: await this.putToken(sid, userId) };
  }

  /** Spend a refresh token and issue its successor; reuse of a spent token revokes the family. */
  async rotate(refreshToken: string): Promise<RotateResult> {
    const key = `rt:${hashToken(refreshToken)}`;
    const current = await this.store.get(key);
    if (current === null) return { ok: false, reason: "unknown" };
    const record = JSON.parse(current) as TokenRecord;
    const previous = await this.store.swap(key, JSON.stringify({ ...record, s: 1 }));
    if (previous === null) return { ok: false, reason: "unknown" };
    if ((JSON.parse(previous) as TokenRecord).s === 1) {
      await this.revoke(record.f);
      return { ok: false, reason: "reused" };
    }
    if ((await this.store.get(`fam:${record.f}`)) === null) return { ok: false, reason: "revoked" };
    // the user's list of families lives as long as its longest-lived family: a session kept alive by refreshing
    // must still be found (and ended) by a password change after the login that started it has aged out
    await Promise.all([
      this.store.set(`fam:${record.f}`, record.u, { ttlMs: this.refreshTtlMs }),
      this.store.addToSet(`user:${record.u}:fams`, record.f, this.refreshTtlMs),
    ]);
    // revoked meanwhile (see the header): the renewal above must not bring the family back
    if (await this.revocations.isRevoked(record.f)) {
      await this.store.del(`fam:${record.f}`);
      return { ok: false, reason: "revoked" };
    }
    return { ok: true, sid: record.f, userId: record.u, refreshToken: await this.putToken(record.f, record.u) };
  }

  /** The family of a refresh token (spent or not), if it is known. */
  async familyOf(refreshToken: string): Promise<{ sid: string; userId: string } | undefined> {
    const raw = await this.store.get(`rt:${hashToken(refreshToken)}`);
    if (raw === null) return undefined;
    const r = JSON.parse(raw) as TokenRecord;
    return { sid: r.f, userId: r.u };
  }

  /** End a session: its refresh tokens stop working, its access tokens are revoked until they expire. */
  async revoke(sid: string): Promise<void> {
    // the revocation first, then the record: a racing refresh that renews the record after this reads the revocation
    await this.revocations.revoke(sid);
    await this.store.del(`fam:${sid}`);
  }

  /** End every session of a user (password change). */
  async revokeAll(userId: string): Promise<void> {
    const sids = await this.store.setMembers(`user:${userId}:fams`);
    await Promise.all(sids.map((sid) => this.revoke(sid)));
    await this.store.del(`user:${userId}:fams`);
  }
}
