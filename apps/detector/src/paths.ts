/**
 * Files the worker finds relative to its own code. This module sits directly under src/ so each URL resolves the
 * same from the source (src/paths.ts) and from the build, where it is bundled into dist/server.js: `../model` is the
 * app's model/ folder either way, and the session thread's entry sits at the same relative path under src/ and dist/
 * (tools/delivery/build.ts bundles every `*.worker.ts` to its `.js` twin).
 */
import { fileURLToPath } from "node:url";

export const BUNDLED_MODEL_PATH = fileURLToPath(new URL("../model/defects.onnx", import.meta.url));

const fromSource = import.meta.url.endsWith(".ts");

/** The session thread's entry (a template literal: only the build's `.js` target must exist beside the bundle). */
export const SESSION_WORKER_URL = new URL(`./inference/session.worker.${fromSource ? "ts" : "js"}`, import.meta.url);
