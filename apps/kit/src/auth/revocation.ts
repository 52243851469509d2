/**
 * Session revocation shared through the key-value store: auth writes, the gateway and services read.
 * A revoked session id stays listed for as long as an access token of it can still be valid.
 */
import type { KeyValueStore } from "../redis/port.js";

export class SessionRevocations {
  constructor(
    private readonly store: KeyValueStore,
    /** How long an access token lives: the longest a revocation must be remembered. */
    private readonly accessTtlMs: number,
  ) {}

  static key(sid: string) {
    return `revoked:sid:${sid}`;
  }

  async revoke(sid: string): Promise<void> {
    // + 60 s: covers clock skew between the signer and verifiers
    await this.store.set(SessionRevocations.key(sid), "1", { ttlMs: this.accessTtlMs + 60_000 });
  }

  async isRevoked(sid: string): Promise<boolean> {
    return (await this.store.get(SessionRevocations.key(sid))) !== null;
  }
}
