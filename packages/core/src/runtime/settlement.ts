import { InvalidArgumentError, RaftError, TimeoutError } from '../errors.js';
import { sameSet } from '../protocol/membership.js';
import type { Refusal, SoftState } from '../protocol/raft.js';
import type { Configuration, PeerId } from '../types.js';
import type { PendingCall } from './calls.js';

/**
 * The calls of a leader that settle on something other than one entry applying: a
 * membership change (done when its final configuration applies) and a leadership transfer
 * (done when the target leads).
 */
export class Settlement {
  /** A membership change this peer leads: settles when the final configuration applies (or by timeout). */
  private configChange: { target: PeerId[]; pending: PendingCall; after: number } | null = null;
  private transfer: { target: PeerId; pending: PendingCall } | null = null;

  constructor(
    private readonly name: PeerId,
    private readonly notLeaderError: (indeterminate: boolean) => RaftError,
  ) {}

  /**
   * The protocol's answer to `proposeConfiguration(target)`. `before`: the configuration
   * before it; `after`: the last index before it, so only a configuration the change
   * appends can complete it.
   */
  reconfigured(
    result: 'ok' | 'same' | 'in_progress' | Refusal,
    target: PeerId[],
    pending: PendingCall,
    before: Readonly<Configuration> | null,
    after: number,
  ): void {
    if (result === 'same') {
      pending.resolve({ members: target.slice() });
      return;
    }
    if (result === 'in_progress') {
      pending.reject(
        new RaftError(
          'RAFT_CONFIG_CHANGE_IN_PROGRESS',
          'a membership change is already in progress; retry once it completes',
        ),
      );
      return;
    }
    if (result !== 'ok') {
      pending.reject(this.notLeaderError(false));
      return;
    }
    const prev = this.configChange;
    if (prev !== null) {
      if (before !== null && isFinal(before) && sameSet(before.members, prev.target)) {
        // It is done: its final configuration committed and is only waiting to apply.
        prev.pending.resolve({ members: before.members.slice() });
      } else {
        prev.pending.reject(
          new RaftError(
            'RAFT_CONFIG_CHANGE_IN_PROGRESS',
            'this membership change was replaced by a newer one before its learners caught up',
          ),
        );
      }
    }
    pending.done = () => {
      if (this.configChange?.pending === pending) this.configChange = null;
    };
    this.configChange = { target, pending, after };
  }

  /** A configuration entry applied: it completes the change under way if it is that change's final one. */
  configurationApplied(index: number, config: Configuration): void {
    const change = this.configChange;
    if (change !== null && index > change.after && isFinal(config) && sameSet(config.members, change.target))
      change.pending.resolve(config);
  }

  /** The protocol's answer to `transferLeadership(target)`. */
  transferStarted(result: 'ok' | 'not_voter' | Refusal, target: PeerId, pending: PendingCall): void {
    if (result === 'not_voter') {
      pending.reject(new InvalidArgumentError(`${target} is not a voting member of the cluster`));
    } else if (result !== 'ok') {
      pending.reject(this.notLeaderError(false));
    } else if (target === this.name) {
      pending.resolve(undefined);
    } else {
      pending.done = () => {
        if (this.transfer?.pending === pending) this.transfer = null;
      };
      this.transfer = { target, pending };
    }
  }

  /** The role or leader changed: a transfer is done once its target leads. */
  leaderChanged(next: SoftState): void {
    if (this.transfer !== null && next.leader === this.transfer.target)
      this.transfer.pending.resolve(undefined);
  }

  /**
   * Settles a leadership transfer the protocol gave up on, rather than leaving its caller
   * to its own timeout: still leading with no transfer under way (the target did not take
   * over within an election timeout), or another peer than the target took over.
   */
  settleTransfer(soft: SoftState, transferee: PeerId | null): void {
    const t = this.transfer;
    if (t === null || soft.leader === t.target) return;
    if (soft.role === 'leader') {
      if (transferee !== t.target)
        t.pending.reject(
          new TimeoutError(
            `${t.target} did not take over within an election timeout; ${this.name} still leads`,
          ),
        );
    } else if (soft.leader !== null) {
      t.pending.reject(this.notLeaderError(false));
    }
  }

  /** The peer stopped. */
  rejectAll(reason: RaftError): void {
    this.configChange?.pending.reject(reason);
    this.transfer?.pending.reject(reason);
  }
}

/** A configuration with no learner and no outgoing voter: the end of a change. */
function isFinal(c: Readonly<Configuration>): boolean {
  return c.learners === undefined && c.outgoing === undefined;
}
