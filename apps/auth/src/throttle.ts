/**
 * The auth service's throttles: fixed-window counters in the shared store (every replica sees the same counts).
 * Each attempt is counted atomically on the server BEFORE the work it guards (a password check or hash), so a
 * parallel burst cannot slip past a limit and the hashing it costs is bounded. Over a limit: 429 with one generic
 * message per route and `Retry-After`.
 *
 * - logins, per account and per client IP: a success clears the account's counter and takes its hit back from the
 *   IP's, so only failures accumulate (an office behind one NAT address is not locked out by its own logins);
 * - registrations, per client IP: every attempt counts (each creates an organisation or says an email is taken);
 * - adding members, per organisation (an admin can add admins, so per admin would not bound anything): only attempts
 *   that find the email taken stay counted (no enumeration through an organisation of one's own, which anyone can
 *   register, and registrations are limited per IP), so adding new emails one after another is never refused.
 */
import { judge, type KeyValueStore, type Limit, type LimitResult, tooManyRequests } from "@ndt/kit";
import { isEmailTaken } from "./users.js";

/** One kind of attempt (`login:ip`, `register:ip`, …) counted per subject (an account, a client IP, a user). */
class AttemptCounter {
  constructor(
    private readonly store: KeyValueStore,
    private readonly kind: string,
    private readonly limit: Limit,
  ) {}

  private key(subject: string) {
    return `throttle:${this.kind}:${subject}`;
  }

  /** Count one attempt and judge the count, this attempt included, against the limit. */
  async count(subject: string): Promise<LimitResult> {
    return judge(await this.store.hit(this.key(subject), this.limit.windowMs), this.limit);
  }

  /** Take one attempt back: it turned out not to count. */
  uncount(subject: string): Promise<void> {
    return this.store.unhit(this.key(subject));
  }

  /** Forget every attempt of the subject. */
  async clear(subject: string): Promise<void> {
    await this.store.del(this.key(subject));
  }
}

/** 429 with `message` when any result is over its limit, retrying after the last of those limits resets. */
function refuseOverLimit(results: readonly LimitResult[], message: string): void {
  const over = results.filter((result) => !result.allowed);
  if (over.length > 0) throw tooManyRequests(Math.max(...over.map((result) => result.resetMs)) / 1000, message);
}

export interface LoginThrottleOptions {
  maxPerAccount: number;
  maxPerIp: number;
  windowMs: number;
}

export class LoginThrottle {
  private readonly account: AttemptCounter;
  private readonly ip: AttemptCounter;

  constructor(store: KeyValueStore, opts: LoginThrottleOptions) {
    this.account = new AttemptCounter(store, "login:acct", { max: opts.maxPerAccount, windowMs: opts.windowMs });
    this.ip = new AttemptCounter(store, "login:ip", { max: opts.maxPerIp, windowMs: opts.windowMs });
  }

  /** Count an attempt; throws 429 when the account or the IP is over its limit (the same answer for either). */
  async attempt(email: string, ip: string): Promise<void> {
    refuseOverLimit(
      await Promise.all([this.account.count(email), this.ip.count(ip)]),
      "Too many login attempts, try again later",
    );
  }

  async succeeded(email: string, ip: string): Promise<void> {
    await Promise.all([this.account.clear(email), this.ip.uncount(ip)]);
  }
}

export interface RegistrationThrottleOptions {
  maxPerIp: number;
  windowMs: number;
}

export class RegistrationThrottle {
  private readonly ip: AttemptCounter;

  constructor(store: KeyValueStore, opts: RegistrationThrottleOptions) {
    this.ip = new AttemptCounter(store, "register:ip", { max: opts.maxPerIp, windowMs: opts.windowMs });
  }

  /** Count a registration from `ip`, whatever its outcome; throws 429 when the IP is over its limit. */
  async attempt(ip: string): Promise<void> {
    refuseOverLimit([await this.ip.count(ip)], "Too many registrations, try again later");
  }
}

export interface MemberThrottleOptions {
  /** `email_taken` answers per organisation per window. */
  maxTakenPerOrganization: number;
  windowMs: number;
}

export class MemberThrottle {
  private readonly taken: AttemptCounter;

  constructor(store: KeyValueStore, opts: MemberThrottleOptions) {
    this.taken = new AttemptCounter(store, "members:taken", {
      max: opts.maxTakenPerOrganization,
      windowMs: opts.windowMs,
    });
  }

  /**
   * Run `create` (hash, insert) for an admin of `organizationId`. The attempt holds one of the organisation's counts
   * while it runs, taken atomically before `create` starts: none left (taken emails earlier in the window, or as many
   * attempts in flight) → 429 and `create` does not run. The count is kept only when `create` throws `email_taken`; a
   * created member or a refusal gives it back (a parallel onboarding burst does not lock its admins out).
   *
   * Admission is decided before the outcome is known, so a 429 says nothing about its email, and at most the limit
   * of `email_taken` answers per window reach the organisation however the requests are timed. (Counting only after the
   * outcome would not do: in a parallel burst, the requests already past the check would answer 201 for new emails
   * and 429 for taken ones.) The price: more member additions in flight at once than the limit has left are refused.
   */
  async creating<T>(organizationId: string, create: () => Promise<T>): Promise<T> {
    const held = await this.taken.count(organizationId);
    if (!held.allowed) {
      await this.#giveBack(organizationId);
      refuseOverLimit([held], "Too many attempts to add members, try again later");
    }
    let taken = false;
    try {
      return await create();
    } catch (err) {
      taken = isEmailTaken(err);
      throw err;
    } finally {
      if (!taken) await this.#giveBack(organizationId);
    }
  }

  /**
   * Best effort: a store failure here must not turn a member already created into a 500 (a retry would then hear
   * email_taken); a count not given back costs the organisation one attempt until the window ends.
   */
  async #giveBack(organizationId: string): Promise<void> {
    await this.taken.uncount(organizationId).catch(() => undefined);
  }
}
