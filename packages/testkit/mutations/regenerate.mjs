#!/usr/bin/env node
// Regenerates the planted-bug patches (the *.diff files beside this script) from the
// edits below, against @raft/core's source as it is in this checkout: each edit replaces
// one exact, unique piece of a file of packages/core/src. When core's source moves, fix
// the `from` text of the edits that no longer match (the script names them), rerun, and
// check the result with `node packages/testkit/bin/mutate.mjs`.
//
//   node packages/testkit/mutations/regenerate.mjs [01,15]
//
// It edits packages/core/src in place, runs `git diff`, and puts every file back, so
// packages/core must have no uncommitted changes.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const src = join(root, 'packages/core/src');

/** Each mutation: edits of files of packages/core/src. */
const MUTATIONS = {
  '01-commit-earlier-term-by-counting': [
    {
      file: 'protocol/raft.ts',
      from: '    if (index > this.log.commitIndex && this.log.term(index) === this.#term) {\n      this.log.commitTo(index);',
      to: "    // MUTATION: commit an earlier term's entry by counting replicas (Figure 8).\n    if (index > this.log.commitIndex) {\n      this.log.commitTo(index);",
    },
  ],
  '02-vote-without-up-to-date-check': [
    {
      file: 'protocol/raft.ts',
      from: '    if (canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm)) {',
      to: '    // MUTATION: vote without the up-to-date check.\n    if (canVote) {',
    },
  ],
  '03-hard-state-without-vote': [
    {
      file: 'runtime/peer.ts',
      from: '          if (rd.hardState !== undefined) write.hardState = rd.hardState;',
      to: '          // MUTATION: the vote is not persisted.\n          if (rd.hardState !== undefined) write.hardState = { term: rd.hardState.term, votedFor: null };',
    },
  ],
  '04-vote-before-durable': [
    {
      file: 'runtime/peer.ts',
      from: "          (rd.hardState === undefined &&\n          (m.type === 'AppendEntries' || m.type === 'InstallSnapshot' || m.type === 'TimeoutNow')\n            ? early",
      to: "          ((rd.hardState === undefined &&\n            (m.type === 'AppendEntries' || m.type === 'InstallSnapshot' || m.type === 'TimeoutNow')) ||\n          // MUTATION: votes leave before the write that records them.\n          m.type === 'RequestVoteResponse'\n            ? early",
    },
  ],
  '05-read-without-readindex': [
    {
      file: 'runtime/peer.ts',
      from: '      const forward = this.checkServes(opts);\n      const context = this.nextReadContext++;',
      to: '      const forward = this.checkServes(opts);\n      // MUTATION: answer from local state, without ReadIndex.\n      if (query !== null || query === null) {\n        pending.resolve(this.machine.handleRead(query, this.apply.state));\n        return;\n      }\n      const context = this.nextReadContext++;',
    },
  ],
  '06-ack-before-durable': [
    {
      file: 'runtime/peer.ts',
      from: "          (rd.hardState === undefined &&\n          (m.type === 'AppendEntries' || m.type === 'InstallSnapshot' || m.type === 'TimeoutNow')\n            ? early",
      to: "          ((rd.hardState === undefined &&\n            (m.type === 'AppendEntries' || m.type === 'InstallSnapshot' || m.type === 'TimeoutNow')) ||\n          // MUTATION: acknowledgements leave before the write of the entries.\n          m.type === 'AppendEntriesResponse'\n            ? early",
    },
  ],
  '07-snapshot-labelled-early': [
    {
      file: 'runtime/apply.ts',
      from: '    const index = this.lastApplied;\n    this.lastSnapshotIndex = index;',
      to: '    // MUTATION: the snapshot holds the state after lastApplied but is labelled one index early.\n    const index = this.lastApplied - 1;\n    this.lastSnapshotIndex = index;',
    },
  ],
  '08-state-kept-log-replayed': [
    {
      file: 'runtime/apply.ts',
      from: '/** What the apply loop needs of its peer. */',
      to: '/** MUTATION: states kept across restarts, by peer name. */\nexport const warmStates = new Map<PeerId, unknown>();\n\n/** What the apply loop needs of its peer. */',
    },
    {
      file: 'runtime/apply.ts',
      from: '      this.state = next;\n      mine?.resolve(reply);',
      to: '      this.state = next;\n      warmStates.set(this.host.name, next);\n      mine?.resolve(reply);',
    },
    {
      file: 'runtime/peer.ts',
      from: "import { ApplyLoop } from './apply.js';",
      to: "import { ApplyLoop, warmStates } from './apply.js';",
    },
    {
      file: 'runtime/peer.ts',
      from: '      this.apply.start(this.machine.init(this.name), 0);',
      to: '      const warm = stored.lastIndex > 0 ? (warmStates.get(this.name) as S | undefined) : undefined;\n      const state = warm ?? this.machine.init(this.name);\n      warmStates.set(this.name, state);\n      this.apply.start(state, 0);',
    },
  ],
  '09-commit-by-new-configuration-alone': [
    {
      file: 'protocol/raft.ts',
      from: '    const index = this.jointCommitted((v) =>\n      v === this.id ? this.log.stableIndex : (this.progress.get(v)?.matchIndex ?? 0),\n    );\n    if (index > this.log.commitIndex && this.log.term(index) === this.#term) {',
      to: "    // MUTATION: during a joint change, commit with the new voters' majority alone.\n    const index = committedValue(\n      (this.#config?.members ?? []).map((v) =>\n        v === this.id ? this.log.stableIndex : (this.progress.get(v)?.matchIndex ?? 0),\n      ),\n    );\n    if (index > this.log.commitIndex && this.log.term(index) === this.#term) {",
    },
    {
      file: 'protocol/raft.ts',
      from: "import { allVoters, jointCommittedValue, jointVoteResult, type VoteResult } from './quorum.js';",
      to: "import { allVoters, committedValue, jointCommittedValue, jointVoteResult, type VoteResult } from './quorum.js';",
    },
  ],
  '10-removed-leader-keeps-leading': [
    {
      file: 'protocol/raft.ts',
      from: '        // Removed from the cluster: the final configuration is committed, so step down (§6),\n        // handing over first so that the cluster does not wait out an election timeout.\n        this.handOverOnRemoval(cfg);\n        this.becomeFollower(this.#term, null);',
      to: '        // MUTATION: a removed leader does not step down (nor hand over).',
    },
  ],
  '11-snapshot-restore-keeps-conflicting-log': [
    {
      file: 'protocol/log.ts',
      from: '    if (this.matchTerm(index, term) && index <= this.lastIndex()) {',
      to: "    // MUTATION: keep the suffix even when the entry at the snapshot's index conflicts.\n    if (index <= this.lastIndex()) {",
    },
  ],
  '12-precandidate-increments-term': [
    {
      file: 'protocol/raft.ts',
      from: "    // A pre-vote changes neither term nor vote (dissertation §9.6).\n    this.#role = 'precandidate';",
      to: "    // A pre-vote changes neither term nor vote (dissertation §9.6).\n    // MUTATION: a pre-vote raises the term.\n    this.#term += 1;\n    this.#role = 'precandidate';",
    },
  ],
  '13-follower-keeps-conflicting-entries': [
    {
      file: 'protocol/log.ts',
      from: '      if (mine === undefined || mine !== e.term) break;',
      to: '      // MUTATION: an entry held at that index counts as matching, whatever its term.\n      if (mine === undefined) break;',
    },
  ],
  '14-follower-commit-not-capped': [
    {
      file: 'protocol/raft.ts',
      from: '    this.log.commitTo(Math.min(m.leaderCommit, lastNew));',
      to: '    // MUTATION: commit up to leaderCommit, past the entries this message vouched for.\n    this.log.commitTo(m.leaderCommit);',
    },
  ],
  '15-election-by-new-configuration-alone': [
    {
      file: 'protocol/raft.ts',
      from: "    return this.#config === null ? 'pending' : jointVoteResult(this.#config, this.votes);",
      to: "    // MUTATION: during a joint change, the new voters' majority alone elects.\n    return this.#config === null ? 'pending' : voteResult(this.#config.members, this.votes);",
    },
    {
      file: 'protocol/raft.ts',
      from: "import { allVoters, jointCommittedValue, jointVoteResult, type VoteResult } from './quorum.js';",
      to: "import { allVoters, jointCommittedValue, jointVoteResult, voteResult, type VoteResult } from './quorum.js';",
    },
  ],
  '16-vote-twice-in-a-term': [
    {
      file: 'protocol/raft.ts',
      from: '      (this.#votedFor === null && this.#leader === null) ||',
      to: '      // MUTATION: a peer without a leader votes again in a term it already voted in.\n      this.#leader === null ||',
    },
  ],
};

const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8' });
if (git('status', '--porcelain', '--', 'packages/core').trim() !== '') {
  console.error('packages/core has uncommitted changes: commit or stash them first');
  process.exit(2);
}
const only = process.argv[2]?.split(',') ?? null;
let failed = 0;
for (const [name, edits] of Object.entries(MUTATIONS)) {
  if (only !== null && !only.some((o) => name.startsWith(o))) continue;
  const originals = new Map();
  try {
    for (const { file, from, to } of edits) {
      const path = join(src, file);
      if (!originals.has(path)) originals.set(path, readFileSync(path, 'utf8'));
      const text = readFileSync(path, 'utf8');
      const at = text.indexOf(from);
      if (at < 0 || text.indexOf(from, at + 1) >= 0) {
        throw new Error(`${file}: the text to replace is ${at < 0 ? 'gone' : 'not unique'}:\n${from}`);
      }
      writeFileSync(path, text.slice(0, at) + to + text.slice(at + from.length));
    }
    writeFileSync(join(here, `${name}.diff`), git('diff', '--', 'packages/core'));
    console.log(`${name}.diff written`);
  } catch (err) {
    failed++;
    console.error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    for (const [path, text] of originals) writeFileSync(path, text);
  }
}
process.exit(failed > 0 ? 1 : 0);
