/**
 * The local stack's TLS certificate for localhost: self-signed, made at the first start (npm `selfsigned`, so a
 * machine without openssl works) and reused while it is valid for at least another day. Clients trust it by
 * passing `cert.pem` as their CA (the demo and the tests do; `curl --cacert .local/tls/cert.pem`).
 */
import { X509Certificate } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { generate } from "selfsigned";

export interface LocalCertificate {
  cert: string;
  key: string;
  certFile: string;
  /** True when this start made it. */
  created: boolean;
}

const DAY_MS = 86_400_000;

export async function localCertificate(dir: string): Promise<LocalCertificate> {
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  const existing = await Promise.all([readFile(certFile, "utf8"), readFile(keyFile, "utf8")]).catch(() => undefined);
  if (existing) {
    const [cert, key] = existing;
    try {
      if (Date.parse(new X509Certificate(cert).validTo) > Date.now() + DAY_MS) {
        return { cert, key, certFile, created: false };
      }
    } catch {
      // unreadable: made again below (a certificate holds no data worth keeping)
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const notBeforeDate = new Date(Date.now() - 60_000);
  const pems = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate,
    // the longest validity TLS clients accept for a leaf certificate
    notAfterDate: new Date(notBeforeDate.getTime() + 397 * DAY_MS),
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      },
    ],
  });
  // written whole or not at all: a half-written key would be reused on the next start
  await writeFile(`${keyFile}.tmp`, pems.private, { mode: 0o600 });
  await writeFile(`${certFile}.tmp`, pems.cert, { mode: 0o644 });
  await rename(`${keyFile}.tmp`, keyFile);
  await rename(`${certFile}.tmp`, certFile);
  return { cert: pems.cert, key: pems.private, certFile, created: true };
}
