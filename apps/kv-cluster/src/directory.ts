import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PeerId } from '@raft/core';
import type { DirectoryObserver } from './machine.js';
import { ID_PATTERN, normalizePeerUrl } from './machine.js';

/** The file, in the data directory, where a node keeps the peer URLs it knows. */
export const DIRECTORY_FILE = 'raft-kv-peers.json';

/** What {@link PeerDirectory} changes when a peer's URL comes or goes: the transport's peer map. */
export interface PeerMap {
  setPeer(id: PeerId, url: string): void;
  removePeer(id: PeerId): void;
}

/** A minimal logger (pino fits). */
export interface DirectoryLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/**
 * The peer URLs a node knows, kept in step with the replicated peer directory of the
 * state machine ({@link DirectoryObserver}) and with the transport's peer map.
 *
 * Why a file too: after a restart a node learns the commit index, and so applies the
 * directory's entries again, only from a leader; it may need a URL it learned later than
 * its `--peers` (a node added since) to reach that leader. So every change is also
 * written to {@link DIRECTORY_FILE}, and a node starts from that file plus `--peers`
 * (`--peers` wins for the ids it lists: it is what the operator said last). The log
 * stays the truth: applying it again brings every URL back to the replicated value.
 *
 * A restored snapshot only adds or updates URLs, never forgets one: at start, the latest
 * snapshot may be older than URLs this node already knows from the file, and forgetting
 * them until the log is applied again could cut it off from the leader. Forgetting comes
 * only from an explicit `{ op: 'peer', url: null }`.
 */
export class PeerDirectory implements DirectoryObserver {
  private transport: PeerMap | null = null;
  private saving: Promise<void> = Promise.resolve();
  private pendingSave = false;

  private constructor(
    /** The URLs this node uses to dial, accept and forward: a live map, updated in place. */
    readonly known: Map<PeerId, string>,
    private readonly file: string | null,
    private readonly logger: DirectoryLogger,
  ) {}

  /**
   * The directory of a node: `peers` (its `--peers`) over what `dataDir`'s file holds.
   * A missing or unreadable file is ignored (with a warning when unreadable).
   */
  static async open(
    peers: ReadonlyMap<PeerId, string>,
    dataDir: string | null,
    logger: DirectoryLogger,
  ): Promise<PeerDirectory> {
    const known = new Map<PeerId, string>();
    const file = dataDir === null ? null : join(dataDir, DIRECTORY_FILE);
    if (file !== null) {
      try {
        for (const [id, url] of parseDirectoryFile(await readFile(file, 'utf8'))) known.set(id, url);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          logger.warn({ err, file }, 'ignoring an unreadable peer directory file');
      }
    }
    for (const [id, url] of peers) known.set(id, url);
    return new PeerDirectory(known, file, logger);
  }

  /** From now on, every change also goes to `transport`. */
  attach(transport: PeerMap): void {
    this.transport = transport;
  }

  /** A snapshot of the known URLs, sorted by id. */
  toJSON(): Record<PeerId, string> {
    return Object.fromEntries([...this.known].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  changed(id: PeerId, url: string | null): void {
    if (url === null) this.forget(id);
    else this.set(id, url);
  }

  restored(peers: ReadonlyMap<PeerId, string>): void {
    for (const [id, url] of peers) this.set(id, url);
  }

  /** Resolves once every change so far is on disk. */
  async flushed(): Promise<void> {
    while (this.pendingSave) await this.saving;
    await this.saving;
  }

  private set(id: PeerId, url: string): void {
    if (this.known.get(id) === url) return;
    this.known.set(id, url);
    this.transport?.setPeer(id, url);
    this.logger.info({ id, url }, 'peer URL learned');
    this.save();
  }

  private forget(id: PeerId): void {
    if (!this.known.delete(id)) return;
    this.transport?.removePeer(id);
    this.logger.info({ id }, 'peer URL forgotten');
    this.save();
  }

  /** Writes the file (atomically: a temporary file, then a rename), one write at a time. */
  private save(): void {
    if (this.file === null || this.pendingSave) return;
    const file = this.file;
    this.pendingSave = true;
    this.saving = this.saving.then(async () => {
      this.pendingSave = false;
      const body = `${JSON.stringify({ version: 1, peers: this.toJSON() }, null, 2)}\n`;
      try {
        await writeFile(`${file}.tmp`, body, 'utf8');
        await rename(`${file}.tmp`, file);
      } catch (err) {
        this.logger.warn({ err, file }, 'could not save the peer directory file');
      }
    });
  }
}

/** Parses the directory file; entries that are not a valid id and URL are skipped. */
export function parseDirectoryFile(text: string): [PeerId, string][] {
  const parsed = JSON.parse(text) as unknown;
  const peers =
    typeof parsed === 'object' && parsed !== null ? (parsed as { peers?: unknown }).peers : undefined;
  if (typeof peers !== 'object' || peers === null || Array.isArray(peers))
    throw new Error('no "peers" object');
  const out: [PeerId, string][] = [];
  for (const [id, raw] of Object.entries(peers as Record<string, unknown>)) {
    if (!ID_PATTERN.test(id) || typeof raw !== 'string') continue;
    const url = normalizePeerUrl(raw);
    if (typeof url === 'string') out.push([id, url]);
  }
  return out;
}
