// @ts-check
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** The pure core: no clock, no timers, no ambient randomness, no I/O. */
const PURE = ['lib/paxos/**', 'lib/lease/**', 'lib/log/**', 'lib/locks/**', 'lib/replica/**'];

export default defineConfig(
  { ignores: ['dist/**', 'dist-test/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true, allowNullish: true },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: PURE,
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'Date', message: 'The core takes `now` as input.' },
        { name: 'setTimeout', message: 'The core returns wakeAt; the runtime owns timers.' },
        { name: 'setInterval', message: 'The core returns wakeAt; the runtime owns timers.' },
        { name: 'setImmediate', message: 'The core returns wakeAt; the runtime owns timers.' },
        { name: 'performance', message: 'The core takes `now` as input.' },
        { name: 'process', message: 'The core does no I/O.' },
        { name: 'console', message: 'The core does not log; it returns events.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Use the injected Rng.' },
      ],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'The core does no I/O.' },
            { group: ['ws', 'pino', 'croner', 'eventemitter3'], message: 'The core is pure.' },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**', 'examples/**'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
