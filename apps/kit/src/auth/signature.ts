/**
 * Signature checks of access tokens, on keys imported once.
 *
 * Ed25519 goes through libsodium (`sodium-native`) when it loads: measured on this project's 2-core EPYC, a
 * libsodium verify costs ~45 µs where OpenSSL 3.0's (`crypto.verify(null, …)`, portable 32-bit field code) costs
 * ~80 µs — the difference decides whether a token is checked within 50 µs. Both accept exactly the RFC 8032
 * signatures of the key (libsodium additionally rejects small-order keys and R points, which no honest signer
 * produces). Without the native module, OpenSSL is used and `ed25519Backend` says so.
 * ES256 is an OpenSSL ECDSA P-256 verify of the raw r‖s signature (JWS form, RFC 7518 §3.4).
 */
import { createRequire } from "node:module";
import { verify as cryptoVerify } from "node:crypto";
import type { VerificationKey } from "./jwks.js";

type SodiumVerify = (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean;

function loadSodium(): SodiumVerify | undefined {
  try {
    const sodium = createRequire(import.meta.url)("sodium-native") as { crypto_sign_verify_detached: SodiumVerify };
    return sodium.crypto_sign_verify_detached.bind(sodium);
  } catch {
    return undefined;
  }
}

const sodiumVerify = loadSodium();

/** Which implementation checks Ed25519 signatures in this process. */
export const ed25519Backend: "libsodium" | "openssl" = sodiumVerify ? "libsodium" : "openssl";

/** Whether `signature` (64 bytes for both algorithms) signs `data` under `key`. Never throws. */
export function signatureValid(key: VerificationKey, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    if (key.alg === "EdDSA") {
      if (sodiumVerify && key.raw) return sodiumVerify(signature, data, key.raw);
      return cryptoVerify(null, data, key.keyObject, signature);
    }
    return cryptoVerify("sha256", data, { key: key.keyObject, dsaEncoding: "ieee-p1363" }, signature);
  } catch {
    return false;
  }
}
