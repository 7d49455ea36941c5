import type { ReconnectOptions } from './options.js';

/**
 * The delay before retry number `attempt` (0 for the first retry): exponential, capped,
 * with part of it random so peers that lost their connections together spread out.
 * `random` returns numbers in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  options: Required<ReconnectOptions>,
  random: () => number,
): number {
  const base = Math.min(
    options.maxDelayMs,
    options.initialDelayMs * options.multiplier ** Math.max(0, attempt),
  );
  const r = random();
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return Math.round(base * (1 - options.jitter * unit));
}
