/**
 * A ring buffer of the last events of a run, as readable lines, printed when a run
 * fails. Lines are formatted only when read: recording must cost little, since a run
 * records tens of thousands of events.
 */
export class Trace {
  private readonly times: number[];
  private readonly texts: (string | (() => string))[];
  private next = 0;
  private count = 0;
  /** Called with every line as it is recorded (verbose mode). */
  onLine: ((line: string) => void) | null = null;

  constructor(private readonly capacity = 200) {
    this.times = new Array<number>(capacity).fill(0);
    this.texts = new Array<string | (() => string)>(capacity).fill('');
  }

  /** Records one line at virtual time `t`; `text` may be a function, called only if the line is shown. */
  add(t: number, text: string | (() => string)): void {
    this.times[this.next] = t;
    this.texts[this.next] = text;
    this.next = (this.next + 1) % this.capacity;
    this.count++;
    if (this.onLine !== null) this.onLine(formatLine(t, text));
  }

  /** The recorded lines, oldest first (at most `capacity`). */
  lines(): string[] {
    const n = Math.min(this.count, this.capacity);
    const out: string[] = [];
    const start = (this.next - n + this.capacity) % this.capacity;
    for (let i = 0; i < n; i++) {
      const k = (start + i) % this.capacity;
      out.push(formatLine(this.times[k]!, this.texts[k]!));
    }
    return out;
  }

  /** How many lines were recorded in all. */
  get total(): number {
    return this.count;
  }
}

function formatLine(t: number, text: string | (() => string)): string {
  return `${t.toFixed(3).padStart(10)}  ${typeof text === 'string' ? text : text()}`;
}
