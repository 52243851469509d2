/** Creating users: one email form, and one answer when the email belongs to an account already (CONTRACTS §3). */
import { conflict, HttpError, isUniqueViolation } from "@ndt/kit";

const EMAIL_TAKEN = "email_taken";

/** Emails are stored and matched trimmed and lower-cased. */
export const normalizeEmail = (email: string) => email.trim().toLowerCase();

/** Run an insert of a user: a duplicate email (unique violation) becomes 409 `email_taken`. */
export async function insertingUser<T>(insert: () => Promise<T>): Promise<T> {
  try {
    return await insert();
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(EMAIL_TAKEN, "An account with this email already exists");
    throw err;
  }
}

/** Whether `err` is the `email_taken` answer of `insertingUser`. */
export const isEmailTaken = (err: unknown) => err instanceof HttpError && err.code === EMAIL_TAKEN;
