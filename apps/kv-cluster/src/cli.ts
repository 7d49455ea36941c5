#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { InvalidArgumentError, RaftError } from '@raft/core';
import { pino } from 'pino';
import { adminCommand, runAdmin } from './admin.js';
import { runCluster } from './cluster.js';
import { HELP } from './help.js';
import { startNode } from './node.js';
import { clusterOptions, nodeOptions } from './options.js';

const NODE_FLAGS = [
  'id',
  'listen',
  'http',
  'data',
  'peers',
  'secret',
  'request-timeout',
  'log-level',
  'snapshot-every',
  'election-timeout',
  'heartbeat-interval',
  'peer-cert-file',
  'peer-key-file',
  'peer-trusted-ca-file',
  'cert-file',
  'key-file',
  'trusted-ca-file',
  'allowed-hosts',
  'admin-token',
] as const;
const NODE_SWITCHES = ['join', 'insecure'] as const;
const CLUSTER_FLAGS = [
  'nodes',
  'data',
  'host',
  'peer-port',
  'http-port',
  'secret',
  'request-timeout',
  'log-level',
  'snapshot-every',
  'election-timeout',
  'heartbeat-interval',
  'admin-token',
] as const;
const ADMIN_FLAGS = ['http', 'timeout', 'admin-token', 'cacert'] as const;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version?: string;
  };
  return pkg.version ?? '0.0.0';
}

/**
 * Parses `--flag value` options and `--switch`es of a command (and, when allowed, its
 * positional arguments); unknown flags and stray arguments are errors naming them.
 */
function parseFlags<F extends string, S extends string = never>(
  command: string,
  args: string[],
  flags: readonly F[],
  switches: readonly S[] = [],
  allowPositionals = false,
): Partial<Record<F, string>> & Partial<Record<S, boolean>> & { positionals: string[] } {
  try {
    const options: Record<string, { type: 'string' | 'boolean' }> = {};
    for (const f of flags) options[f] = { type: 'string' };
    for (const f of switches) options[f] = { type: 'boolean' };
    const { values, positionals } = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals,
    });
    return { ...(values as Partial<Record<F, string>> & Partial<Record<S, boolean>>), positionals };
  } catch (err) {
    const code = (err as { code?: string }).code;
    const message = (err as Error).message;
    const flag = /'(-[^']*)'/.exec(message)?.[1];
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      throw new InvalidArgumentError(
        `${command}: unknown option ${flag ?? ''} (options: ${[...flags, ...switches].map((f) => `--${f}`).join(', ')})`,
      );
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE')
      throw new InvalidArgumentError(`${command}: option ${flag ?? ''} needs a value`);
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL')
      throw new InvalidArgumentError(`${command}: unexpected argument (${message.replace(/^.*?'/, "'")})`);
    throw new InvalidArgumentError(`${command}: ${message}`);
  }
}

async function runNode(args: string[]): Promise<number> {
  const opts = nodeOptions(parseFlags('node', args, NODE_FLAGS, NODE_SWITCHES), process.env);
  const logger = pino({ level: opts.logLevel, base: { pid: process.pid, node: opts.id } });
  const node = await startNode(opts, logger);
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        resolve(1);
        return;
      }
      logger.info({ signal }, 'stopping');
      node.stop().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'stopping failed');
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // Started by \`raft-kv cluster\` (an IPC channel): stop if it goes away without a word.
    if (process.send !== undefined) process.once('disconnect', () => onSignal('SIGTERM'));
    void node.failed.then(() => resolve(1));
  });
}

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? 1 : 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  switch (command) {
    case 'node':
      return runNode(rest);
    case 'cluster':
      return runCluster(clusterOptions(parseFlags('cluster', rest, CLUSTER_FLAGS), process.env));
    case 'members':
    case 'transfer': {
      const { positionals, ...flags } = parseFlags(command, rest, ADMIN_FLAGS, [], true);
      return runAdmin(adminCommand(command, flags, positionals, process.env), (line) =>
        process.stdout.write(`${line}\n`),
      );
    }
    default:
      throw new InvalidArgumentError(
        `unknown command ${JSON.stringify(command)} (expected node, cluster, members or transfer; see raft-kv --help)`,
      );
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // A startup error: one line naming the problem, no stack trace.
    const message = RaftError.isInstance(err) || err instanceof Error ? err.message : String(err);
    process.stderr.write(`raft-kv: ${message}\n`);
    process.exit(1);
  },
);
