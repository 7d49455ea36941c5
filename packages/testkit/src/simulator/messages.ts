import type { LogEntry, RaftMessage } from '@raft/core';

/**
 * A deep copy of a message, as a network hands the receiver its own bytes. Faster than
 * `structuredClone`; only the fields of `RaftMessage` travel (validation drops the rest anyway).
 */
export function cloneMessage(m: RaftMessage): RaftMessage {
  switch (m.type) {
    case 'AppendEntries':
      return {
        type: m.type,
        term: m.term,
        from: m.from,
        to: m.to,
        prevLogIndex: m.prevLogIndex,
        prevLogTerm: m.prevLogTerm,
        entries: m.entries.map((e: LogEntry) => ({
          index: e.index,
          term: e.term,
          type: e.type,
          data: e.data.slice(),
        })),
        leaderCommit: m.leaderCommit,
        seq: m.seq,
      };
    case 'InstallSnapshot':
      return { ...m, meta: structuredClone(m.meta), data: m.data.slice() };
    case 'AppendEntriesResponse':
    case 'RequestVote':
    case 'RequestVoteResponse':
    case 'InstallSnapshotResponse':
    case 'TimeoutNow':
    case 'ProposeResult':
    case 'ReadIndexRequest':
    case 'ReadIndexResult':
      return { ...m };
    case 'Propose':
      return { ...m, commands: m.commands.map((c) => c.slice()) };
  }
}

/** One short line for a message, for traces. */
export function describeMessage(m: RaftMessage): string {
  switch (m.type) {
    case 'AppendEntries': {
      const n = m.entries.length;
      const span =
        n === 0
          ? 'heartbeat'
          : `entries ${m.entries[0]!.index}..${m.entries[n - 1]!.index} (terms ${[...new Set(m.entries.map((e) => e.term))].join(',')})`;
      return `AppendEntries t${m.term} prev=${m.prevLogIndex}/t${m.prevLogTerm} ${span} commit=${m.leaderCommit} seq=${m.seq}`;
    }
    case 'AppendEntriesResponse':
      return m.success
        ? `AppendEntriesResponse t${m.term} ok match=${m.matchIndex} seq=${m.seq}`
        : `AppendEntriesResponse t${m.term} reject prev=${m.prevLogIndex} conflict=${m.conflictIndex}/t${m.conflictTerm} seq=${m.seq}`;
    case 'RequestVote':
      return `${m.preVote ? 'PreVote' : 'RequestVote'} t${m.term} last=${m.lastLogIndex}/t${m.lastLogTerm}`;
    case 'RequestVoteResponse':
      return `${m.preVote ? 'PreVoteResponse' : 'RequestVoteResponse'} t${m.term} ${m.voteGranted ? 'granted' : 'refused'}`;
    case 'InstallSnapshot':
      return `InstallSnapshot t${m.term} snap=${m.meta.index}/t${m.meta.term} offset=${m.offset} bytes=${m.data.length}${m.done ? ' done' : ''}`;
    case 'InstallSnapshotResponse':
      return `InstallSnapshotResponse t${m.term} snap=${m.index} next=${m.nextOffset}${m.done ? ' done' : ''}`;
    case 'TimeoutNow':
      return `TimeoutNow t${m.term}`;
    case 'Propose':
      return `Propose t${m.term} id=${m.id} commands=${m.commands.length}`;
    case 'ReadIndexRequest':
      return `ReadIndexRequest t${m.term} id=${m.id}`;
    case 'ProposeResult':
    case 'ReadIndexResult':
      return `${m.type} t${m.term} id=${m.id} ${m.refused ? `refused${m.leader === undefined ? '' : ` leader=${m.leader}`}` : `index=${m.index}`}`;
  }
}
