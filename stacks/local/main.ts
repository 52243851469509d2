/**
 * `npm start`: the whole platform on this machine (CONTRACTS §1). Prints progress while it starts, then the
 * start-up report (URL, docs, what is embedded and what is real, time to ready); Ctrl-C stops it cleanly.
 *
 * Exit codes: 0 after a clean stop; 1 when something failed (the message says what and what to do); 2 when the
 * public port is taken or invalid.
 */
import { LocalStackError } from "./errors.js";
import { REPO_ROOT } from "./paths.js";
import { LocalStack, type StartReport } from "./stack.js";

function printReport(report: StartReport): void {
  const width = Math.max(...report.dependencies.map((d) => d.name.length));
  const lines = [
    "",
    `NDT platform ready in ${(report.readyMs / 1000).toFixed(1)} s`,
    "",
    `  API      ${report.url}`,
    `  docs     ${report.docsUrl}`,
    `  TLS      self-signed for localhost: trust ${report.certFile} (e.g. curl --cacert ${report.certFile})`,
    `  data     ${report.dataDir}`,
    "",
    "  dependencies",
    ...report.dependencies.map((d) => `    ${d.name.padEnd(width)}  ${d.mode.padEnd(8)}  ${d.detail}`),
    "",
    "  services",
    ...report.services.map((s) => `    ${s.name.padEnd(9)} 127.0.0.1:${s.port}  log ${s.log}`),
    ...report.skipped.map((s) => `    ${s.name.padEnd(9)} not started: ${s.reason}`),
    "",
    "Try it: npm run demo        Stop: Ctrl-C",
    "",
  ];
  console.log(lines.join("\n"));
}

async function main(): Promise<number> {
  const stack = new LocalStack({
    root: REPO_ROOT,
    env: process.env,
    // the live line only where it can be redrawn: a terminal, not a log file or CI
    ...(process.stdout.isTTY ? { live: (text: string) => process.stdout.write(`\r\x1b[K${text}`) } : {}),
  });
  process.once("exit", () => stack.killNow());
  let signals = 0;
  let firstSignalAt = 0;
  let stopRequested: (signal: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => (stopRequested = resolve));
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      // Ctrl-C under `npm start` arrives twice at once (the terminal's and npm's forward): one press, one stop
      if (signals > 0 && Date.now() - firstSignalAt < 1_000) return;
      if (signals === 0) firstSignalAt = Date.now();
      signals += 1;
      if (signals === 1) {
        console.log(`\n${signal}: stopping (the services drain, then PostgreSQL stops; again to force)…`);
        stopRequested(signal);
      } else {
        console.log("forcing the services to stop");
        void stack.stop({ force: true });
      }
    });
  }

  console.log(`Starting the NDT platform (data in ${stack.dataDir})`);
  try {
    const report = await Promise.race([stack.start(), stopped.then(() => undefined), stack.crashed]);
    if (report) {
      printReport(report);
      await Promise.race([stopped, stack.crashed]);
    }
    await stack.stop();
    console.log("stopped; all data kept");
    return 0;
  } catch (err) {
    console.error(`\nnpm start failed: ${err instanceof Error ? err.message : String(err)}`);
    await stack.stop().catch((stopErr) => console.error(`while stopping: ${String(stopErr)}`));
    return err instanceof LocalStackError ? err.exitCode : 1;
  }
}

process.exitCode = await main();
