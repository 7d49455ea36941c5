import type { PeerCertificate } from 'node:tls';
import type { PeerId } from '@raft/core';

/**
 * The names a certificate binds: its subject CN (or CNs) and its DNS and URI subjectAltNames.
 * IP subjectAltNames are left out: they name hosts, not peers.
 */
export function certificateNames(cert: PeerCertificate): string[] {
  const names: string[] = [];
  const cn: unknown = (cert.subject as unknown as Record<string, unknown> | undefined)?.['CN'];
  if (typeof cn === 'string') names.push(cn);
  else if (Array.isArray(cn)) for (const n of cn) if (typeof n === 'string') names.push(n);
  const san = cert.subjectaltname;
  if (typeof san === 'string') {
    for (const entry of san.split(', ')) {
      if (entry.startsWith('DNS:')) names.push(entry.slice(4));
      else if (entry.startsWith('URI:')) names.push(entry.slice(4));
    }
  }
  return names;
}

/**
 * True when `cert` names `peer`: its CN, a DNS subjectAltName (case-insensitive, as DNS names
 * are) or a URI subjectAltName equals the peer's name exactly. No wildcards: a certificate for
 * `*.example` must not stand for every peer.
 */
export function certificateNamesPeer(cert: PeerCertificate | null, peer: PeerId): boolean {
  if (cert === null || typeof cert !== 'object' || Object.keys(cert).length === 0) return false;
  const lower = peer.toLowerCase();
  return certificateNames(cert).some((n) => n === peer || n.toLowerCase() === lower);
}

/** A source address as a key: IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as plain IPv4. */
export function addressKey(address: string | undefined): string {
  if (address === undefined) return '(unknown)';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** The source addresses a peer URL's host may connect from (literal IPs; `localhost` as loopback). */
export function addressesOfUrl(url: string): string[] {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return [];
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === 'localhost') return ['127.0.0.1', '::1'];
  return [addressKey(host)];
}
