/**
 * Preloaded (`--import`) into every service `npm start` runs. The launcher talks to nothing over the IPC channel it
 * opens; the channel exists so that its closing says the launcher is gone, however it went (SIGKILL included). The
 * service then stops as on SIGTERM (it drains) instead of running on without its stack. Plain JS: worker threads
 * inherit the preload, and load it before any TS loader is registered in them (there, process.channel is absent).
 */
if (process.channel) {
  // the channel must never be what keeps a service alive
  process.channel.unref();
  process.once("disconnect", () => process.kill(process.pid, "SIGTERM"));
}
