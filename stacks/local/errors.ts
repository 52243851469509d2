/** A problem the person running `npm start` can fix: printed as its message alone, no stack trace, exit 1. */
export class LocalStackError extends Error {
  constructor(
    message: string,
    /** The exit code of `npm start` for it. */
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "LocalStackError";
  }
}
