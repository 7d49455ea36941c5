import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, PEM, with the files they were written to. */
export interface TestCertificate {
  cert: Buffer;
  key: Buffer;
  certFile: string;
  keyFile: string;
}

/** A throwaway CA and certificates it signed, from {@link testCertificates}. */
export interface TestCertificates {
  /** The directory holding every file; `remove()` deletes it. */
  dir: string;
  /** The CA certificate (PEM) and its file. */
  ca: Buffer;
  caFile: string;
  /** One certificate per requested name. */
  certs: Record<string, TestCertificate>;
  /** Deletes the directory. */
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Generates, with the `openssl` command, a throwaway CA (EC P-256) named `caName` and, for
 * each name, a certificate it signs whose CN and DNS subjectAltName are the name, plus
 * `localhost`, `127.0.0.1` and `::1` (server and client use). TEST-ONLY: the keys are written
 * unencrypted to a temporary directory.
 */
export function testCertificates(
  names: readonly string[],
  caName = 'raft-ts TEST-ONLY CA',
): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'raft-tls-'));
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '2',
      '-subj',
      `/CN=${caName}`,
      '-out',
      'ca.crt',
    ],
    dir,
  );
  const certs: Record<string, TestCertificate> = {};
  for (const name of names) {
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`], dir);
    writeFileSync(
      join(dir, `${name}.ext`),
      [
        `subjectAltName=DNS:${name},DNS:localhost,IP:127.0.0.1,IP:::1`,
        'extendedKeyUsage=serverAuth,clientAuth',
        'basicConstraints=CA:FALSE',
        '',
      ].join('\n'),
    );
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '2',
        '-sha256',
        '-extfile',
        `${name}.ext`,
        '-out',
        `${name}.crt`,
      ],
      dir,
    );
    const certFile = join(dir, `${name}.crt`);
    const keyFile = join(dir, `${name}.key`);
    certs[name] = { cert: readFileSync(certFile), key: readFileSync(keyFile), certFile, keyFile };
  }
  const caFile = join(dir, 'ca.crt');
  return {
    dir,
    ca: readFileSync(caFile),
    caFile,
    certs,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
