import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { InvalidArgumentError, RaftError } from '@raft/core';
import type { Configuration } from '@raft/core';
import { normalizePeerUrl } from './machine.js';
import { idProblem } from './ops.js';
import { authority, parseHostPort, parseInteger, resolveAdminToken, type HostPort } from './options.js';

/** A `raft-kv members` or `raft-kv transfer` command, validated. */
export type AdminCommand = {
  http: HostPort;
  timeoutMs: number;
  /** Sent as `Authorization: Bearer TOKEN` (`--admin-token`, `RAFT_KV_ADMIN_TOKEN`), or null. */
  adminToken?: string | null;
  /** The CA (PEM) of the node's HTTPS certificate (`--cacert FILE`): talk HTTPS; or null for HTTP. */
  ca?: Buffer | null;
} & (
  | { action: 'list' }
  | { action: 'add'; id: string; url: string }
  | { action: 'remove'; id: string }
  | { action: 'cancel' }
  | { action: 'transfer'; id: string }
);

/** What `GET /cluster` answers. */
interface View {
  leader: string | null;
  configuration: Configuration;
  peers: Record<string, string>;
}

const USAGE = {
  members:
    'raft-kv members --http HOST:PORT [--admin-token T] [--cacert FILE] [list | add ID URL | remove ID | cancel]',
  transfer: 'raft-kv transfer --http HOST:PORT [--admin-token T] [--cacert FILE] ID',
} as const;

function checkId(command: string, id: string | undefined): string {
  const problem = idProblem(id);
  if (problem !== undefined)
    throw new InvalidArgumentError(`${command}: ${problem}, got ${JSON.stringify(id ?? '')}`);
  return id!;
}

/**
 * Validates `raft-kv members ...` and `raft-kv transfer ...`.
 * @throws `RAFT_INVALID_ARGUMENT` naming what is wrong and the usage.
 */
export function adminCommand(
  command: 'members' | 'transfer',
  flags: { http?: string; timeout?: string; 'admin-token'?: string; cacert?: string },
  args: string[],
  env: NodeJS.ProcessEnv = {},
): AdminCommand {
  if (flags.http === undefined || flags.http.length === 0)
    throw new InvalidArgumentError(
      `${command}: --http is required (e.g. --http 127.0.0.1:8001): ${USAGE[command]}`,
    );
  const base = {
    http: parseHostPort('--http', flags.http),
    timeoutMs:
      flags.timeout === undefined ? 60_000 : parseInteger('--timeout', flags.timeout, 100, 3_600_000),
    adminToken: resolveAdminToken(flags['admin-token'], env),
    ca: flags.cacert === undefined ? null : readCa(flags.cacert),
  };
  const usage = (): never => {
    throw new InvalidArgumentError(
      `${command}: unexpected arguments ${JSON.stringify(args.join(' '))}: ${USAGE[command]}`,
    );
  };
  if (command === 'transfer') {
    if (args.length !== 1) usage();
    return { ...base, action: 'transfer', id: checkId(command, args[0]) };
  }
  const [action, ...rest] = args;
  switch (action) {
    case undefined:
    case 'list':
      if (rest.length > 0) usage();
      return { ...base, action: 'list' };
    case 'add': {
      if (rest.length !== 2) usage();
      const url = normalizePeerUrl(rest[1]!);
      if (typeof url !== 'string') throw new InvalidArgumentError(`members add: ${url.problem}`);
      return { ...base, action: 'add', id: checkId('members add', rest[0]), url };
    }
    case 'remove':
      if (rest.length !== 1) usage();
      return { ...base, action: 'remove', id: checkId('members remove', rest[0]) };
    case 'cancel':
      if (rest.length > 0) usage();
      return { ...base, action: 'cancel' };
    default:
      return usage();
  }
}

function readCa(file: string): Buffer {
  if (file.length === 0) throw new InvalidArgumentError('--cacert must name a file');
  try {
    return readFileSync(file);
  } catch (err) {
    throw new InvalidArgumentError(`--cacert ${file}: cannot read it: ${(err as Error).message}`);
  }
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** One JSON request; null when there is no answer (connection refused, reset, timeout). */
function call(
  cmd: AdminCommand,
  method: string,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<Answer | null> {
  const http = cmd.http;
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    const headers: Record<string, string | number> =
      payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': payload.length };
    if (cmd.adminToken != null && method !== 'GET') headers['authorization'] = `Bearer ${cmd.adminToken}`;
    const options = { host: http.host, port: http.port, method, path, headers, timeout: timeoutMs };
    const request = cmd.ca != null ? httpsRequest : httpRequest;
    const req = request(cmd.ca != null ? { ...options, ca: cmd.ca } : options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => resolve(null));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          resolve({
            status: res.statusCode ?? 0,
            body: typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {},
          });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: {} });
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end(payload);
  });
}

/** Renders `GET /cluster` for a terminal. */
export function formatView(view: View): string[] {
  const c = view.configuration;
  const lines = [`leader:  ${view.leader ?? '(none known)'}`, `members: ${c.members.join(', ')}`];
  if (c.learners !== undefined && c.learners.length > 0)
    lines.push(`learners (catching up): ${c.learners.join(', ')}`);
  if (c.outgoing !== undefined && c.outgoing.length > 0)
    lines.push(`changing from: ${c.outgoing.join(', ')} (joint consensus)`);
  lines.push('peers:');
  for (const [id, url] of Object.entries(view.peers)) lines.push(`  ${id}  ${url}`);
  return lines;
}

function isDone(cmd: AdminCommand, view: View): boolean {
  const c = view.configuration;
  const settled =
    (c.learners === undefined || c.learners.length === 0) &&
    (c.outgoing === undefined || c.outgoing.length === 0);
  switch (cmd.action) {
    case 'add':
      return settled && c.members.includes(cmd.id) && view.peers[cmd.id] === cmd.url;
    case 'remove':
      return settled && !c.members.includes(cmd.id);
    case 'cancel':
      return c.learners === undefined || c.learners.length === 0;
    case 'transfer':
      return view.leader === cmd.id;
    case 'list':
      return true;
  }
}

function failure(cmd: AdminCommand, answer: Answer): RaftError {
  const { message: m, error } = answer.body;
  const message = typeof m === 'string' ? m : typeof error === 'string' ? error : `HTTP ${answer.status}`;
  if (answer.status === 400) return new InvalidArgumentError(`${cmd.action}: ${message}`);
  if (answer.status === 409)
    return new RaftError(
      'RAFT_CONFIG_CHANGE_IN_PROGRESS',
      `${cmd.action}: another membership change is in progress: ${typeof m === 'string' ? m : 'retry once it completes'} (raft-kv members list)`,
    );
  if (answer.status === 401 || answer.status === 403)
    return new RaftError(
      'RAFT_INVALID_ARGUMENT',
      `${cmd.action}: refused (${answer.status}): ${message}; give the nodes' admin token with --admin-token or RAFT_KV_ADMIN_TOKEN`,
    );
  return new RaftError(
    'RAFT_TRANSPORT_UNAVAILABLE',
    `${cmd.action}: unexpected answer ${answer.status} ${JSON.stringify(answer.body)}`,
  );
}

/**
 * Runs an admin command against one node's HTTP API and prints the outcome. The
 * membership operations are idempotent, so an answer that leaves the outcome open (503,
 * 504, no answer) is retried until `timeoutMs`; after a 504 the command waits until
 * `GET /cluster` shows the change done. Resolves with the exit code. `retryMs`: the
 * pause between attempts.
 *
 * @throws `RAFT_INVALID_ARGUMENT` (400), `RAFT_CONFIG_CHANGE_IN_PROGRESS` (409),
 * `RAFT_TIMEOUT` when the change is not done in time.
 */
export async function runAdmin(
  cmd: AdminCommand,
  out: (line: string) => void,
  retryMs = 500,
): Promise<number> {
  const deadline = performance.now() + cmd.timeoutMs;
  const getView = async (): Promise<View | null> => {
    const a = await call(cmd, 'GET', '/cluster', undefined, 5000);
    return a?.status === 200 ? (a.body as unknown as View) : null;
  };
  if (cmd.action === 'list') {
    const view = await getView();
    if (view === null)
      throw new RaftError(
        'RAFT_TRANSPORT_UNAVAILABLE',
        `no answer from ${cmd.ca != null ? 'https' : 'http'}://${authority(cmd.http)}/cluster`,
      );
    for (const line of formatView(view)) out(line);
    return 0;
  }
  const [method, path, body] =
    cmd.action === 'add'
      ? ['POST', '/cluster/members', { id: cmd.id, url: cmd.url }]
      : cmd.action === 'remove'
        ? ['DELETE', `/cluster/members/${encodeURIComponent(cmd.id)}`, undefined]
        : cmd.action === 'cancel'
          ? ['DELETE', '/cluster/learners', undefined]
          : ['POST', '/cluster/leader', { id: cmd.id }];
  let maybeRunning = false;
  let last = 'no answer';
  while (performance.now() < deadline) {
    if (maybeRunning) {
      // An earlier attempt may be running still: done once the cluster shows it.
      const view = await getView();
      if (view !== null && isDone(cmd, view)) {
        for (const line of cmd.action === 'transfer' ? [`leader: ${cmd.id}`] : formatView(view)) out(line);
        return 0;
      }
    }
    const answer = await call(
      cmd,
      method,
      path,
      body,
      Math.max(1000, Math.min(30_000, deadline - performance.now())),
    );
    if (answer?.status === 200) {
      if (cmd.action === 'transfer') out(`leader: ${cmd.id}`);
      else for (const line of formatView(answer.body as unknown as View)) out(line);
      return 0;
    }
    if (answer !== null && (answer.status === 400 || (answer.status === 409 && !maybeRunning)))
      throw failure(cmd, answer);
    if (answer !== null && answer.status !== 409 && answer.status !== 503 && answer.status !== 504)
      throw failure(cmd, answer);
    last = answer === null ? 'no answer' : `${answer.status} ${JSON.stringify(answer.body)}`;
    if (answer === null || answer.status === 504) maybeRunning = true;
    await new Promise((r) => setTimeout(r, retryMs));
  }
  throw new RaftError(
    'RAFT_TIMEOUT',
    `${cmd.action}: not done after ${cmd.timeoutMs} ms (last answer: ${last}); check with raft-kv members list`,
  );
}
