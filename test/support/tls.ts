/**
 * Self-signed certificates for TLS tests, made with the `openssl` CLI in a fresh temp dir.
 * The certificate is valid for CN=127.0.0.1 with subjectAltName IP:127.0.0.1 (and DNS:localhost),
 * so a Node client can verify it with `{ ca: cert }` when dialing 127.0.0.1.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SelfSignedCert {
  /** PEM certificate file (also usable as the CA file, since it is self-signed). */
  certPath: string;
  /** PEM unencrypted private key file. */
  keyPath: string;
  /** PEM text of the certificate. */
  cert: string;
  /** PEM text of the key. */
  key: string;
  /** The temp dir holding both files. */
  dir: string;
  /** Deletes the temp dir. */
  remove(): void;
}

export function makeSelfSignedCert(opts: { commonName?: string; days?: number } = {}): SelfSignedCert {
  const dir = mkdtempSync(join(tmpdir(), 'nsq-tls-'));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const cn = opts.commonName ?? '127.0.0.1';
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256',
        '-days', String(opts.days ?? 2),
        '-subj', `/CN=${cn}`,
        '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout', keyPath, '-out', certPath,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`makeSelfSignedCert: openssl failed: ${(err as Error).message}\n${stderr}`, { cause: err });
  }
  return {
    certPath,
    keyPath,
    cert: readFileSync(certPath, 'utf8'),
    key: readFileSync(keyPath, 'utf8'),
    dir,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
