/**
 * Login throttling per account and per client IP, in the shared store. Every attempt counts (atomically, before the
 * password is checked, so a parallel burst cannot slip past the limit); a success clears the account's counter and
 * takes its hit back from the IP's, so only failures accumulate (an office behind one NAT address is not locked
 * out by its own successful logins).
 * Over either limit: 429 with one generic message, whichever limit tripped and whether the account exists.
 */
import { type KeyValueStore, tooManyRequests } from "@ndt/kit";

export interface ThrottleOptions {
  maxPerAccount: number;
  maxPerIp: number;
  windowMs: number;
}

export class LoginThrottle {
  constructor(
    private readonly store: KeyValueStore,
    private readonly opts: ThrottleOptions,
  ) {}

  private static accountKey(email: string) {
    return `throttle:login:acct:${email}`;
  }

  private static ipKey(ip: string) {
    return `throttle:login:ip:${ip}`;
  }

  /** Count an attempt; throws 429 when the account or the IP is over its limit. */
  async attempt(email: string, ip: string): Promise<void> {
    const [account, client] = await Promise.all([
      this.store.hit(LoginThrottle.accountKey(email), this.opts.windowMs),
      this.store.hit(LoginThrottle.ipKey(ip), this.opts.windowMs),
    ]);
    if (account.count > this.opts.maxPerAccount || client.count > this.opts.maxPerIp) {
      const resetMs = Math.max(
        account.count > this.opts.maxPerAccount ? account.resetMs : 0,
        client.count > this.opts.maxPerIp ? client.resetMs : 0,
      );
      throw tooManyRequests(resetMs / 1000, "Too many login attempts, try again later");
    }
  }

  async succeeded(email: string, ip: string): Promise<void> {
    await Promise.all([this.store.del(LoginThrottle.accountKey(email)), this.store.unhit(LoginThrottle.ipKey(ip))]);
  }
}
