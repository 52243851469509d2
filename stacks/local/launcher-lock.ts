/**
 * One `npm start` per data directory. `<data>/npm-start.pid` names the launcher that owns the directory: a second
 * start on it while that launcher runs is refused (exit 1, nothing touched); a file left by a launcher that is gone
 * (killed with SIGKILL, or the machine stopped) tells this start that what it left running may be stopped — its
 * PostgreSQL first of all.
 */
import { readFileSync, rmSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LocalStackError } from "./errors.js";

export interface LauncherLock {
  /** The pid of a launcher that ended without stopping its stack, when there was one. */
  previousPid: number | undefined;
  /** Removes the file when it still names this process (synchronous: it also runs on `exit`). */
  release(): void;
}

/** Whether `pid` is a process that still runs (EPERM: it runs, as another user; a zombie has ended). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    // "<pid> (<name>) <state> …": an exited process its new parent has not reaped yet still answers signal 0
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return process.platform !== "linux";
  }
}

/** On Linux, whether `pid` is an `npm start` of this stack (a reused pid is not); elsewhere, whether it runs. */
function isLauncher(pid: number): boolean {
  if (!processRuns(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("stacks/local/main.ts");
  } catch {
    return process.platform !== "linux";
  }
}

export async function claimDataDir(dataDir: string): Promise<LauncherLock> {
  const file = join(dataDir, "npm-start.pid");
  const recorded = Number.parseInt(await readFile(file, "utf8").catch(() => ""), 10);
  const previous = Number.isInteger(recorded) && recorded > 0 && recorded !== process.pid ? recorded : undefined;
  if (previous !== undefined && isLauncher(previous)) {
    throw new LocalStackError(
      `another \`npm start\` (pid ${previous}) runs on ${dataDir}.\n` +
        "Nothing was changed. Stop it first (Ctrl-C in its terminal), or give this one its own NDT_DATA_DIR.",
    );
  }
  await writeFile(file, `${process.pid}\n`);
  return {
    previousPid: previous,
    release() {
      let owner = Number.NaN;
      try {
        owner = Number.parseInt(readFileSync(file, "utf8"), 10);
      } catch {
        return;
      }
      if (owner === process.pid) rmSync(file, { force: true });
    },
  };
}
