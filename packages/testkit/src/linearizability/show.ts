/**
 * Renders a value for a counterexample: JSON where JSON works, with byte arrays as
 * `<0a ff>`, `undefined`, bigints and symbols spelled out, and cycles cut. Never throws.
 */
export function show(value: unknown, depth = 0): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint':
      return `${value}n`;
    case 'undefined':
      return 'undefined';
    case 'symbol':
      return value.description === '@raft/testkit/linearizability.unknown' ? 'unknown' : value.toString();
    case 'function':
      return '<function>';
    case 'boolean':
      return String(value);
    case 'object': {
      if (value === null) return 'null';
      if (depth > 20) return '…';
      if (value instanceof Uint8Array) {
        const hex = Array.from(value.subarray(0, 32), (b) => b.toString(16).padStart(2, '0')).join(' ');
        return `<${hex}${value.length > 32 ? ` …(${value.length} bytes)` : ''}>`;
      }
      try {
        if (Array.isArray(value)) return `[${value.map((v) => show(v, depth + 1)).join(', ')}]`;
        const entries = Object.entries(value as Record<string, unknown>).map(
          ([k, v]) => `${JSON.stringify(k)}: ${show(v, depth + 1)}`,
        );
        return `{${entries.join(', ')}}`;
      } catch {
        // A getter that throws, a revoked proxy: show something rather than fail the report.
        return '<unprintable>';
      }
    }
  }
}
