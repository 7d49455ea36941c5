// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      '**/.turbo/**',
      '**/coverage/**',
      '**/data/**',
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // An un-awaited fsync is a lost write.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      // Interface implementations are often async without awaiting (LogStore, Transport).
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // The pure protocol: no I/O, no clock, no timers, no ambient randomness (docs/architecture.md).
    files: ['packages/core/src/protocol/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'path', 'os', 'net', 'events', 'timers', 'crypto'],
              message: 'src/protocol is pure: no Node imports.',
            },
            {
              group: ['../runtime/*', '../runtime'],
              message: 'src/protocol must not depend on the runtime.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        'setTimeout',
        'setInterval',
        'setImmediate',
        'clearTimeout',
        'clearInterval',
        'performance',
        'process',
        'queueMicrotask',
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'src/protocol reads no clock.' },
        { object: 'Math', property: 'random', message: 'Randomness comes from the injected generator.' },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "NewExpression[callee.name='Date']", message: 'src/protocol reads no clock.' },
        { selector: 'AwaitExpression', message: 'src/protocol is synchronous.' },
      ],
    },
  },
  {
    files: ['**/*.test.ts', '**/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
