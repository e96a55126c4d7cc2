#!/usr/bin/env node
/**
 * The `synod` command. `synod node --id a --peers a=ws://…,b=…,c=… --secret-file PATH` runs one
 * node until SIGINT or SIGTERM; `synod --help` says more.
 */
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { parseArgs, USAGE, UsageError } from './args.js';
import { runNode } from './run.js';

function version(): string {
  try {
    const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
    const { version: v } = JSON.parse(text) as { version?: unknown };
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}

async function main(argv: readonly string[]): Promise<number> {
  let command;
  try {
    command = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`synod: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  switch (command.command) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'version':
      process.stdout.write(`synod ${version()}\n`);
      return 0;
    case 'node':
      return runNode(command, {
        env: process.env,
        stdout: (line) => process.stdout.write(`${line}\n`),
        stderr: (line) => process.stderr.write(`${line}\n`),
        onSignal: (handler) => {
          process.on('SIGINT', () => {
            handler('SIGINT');
          });
          process.on('SIGTERM', () => {
            handler('SIGTERM');
          });
        },
        now: () => new Date(),
      });
    default: {
      const never: never = command;
      throw new Error(`unknown command ${String(never)}`);
    }
  }
}

const status = await main(process.argv.slice(2));
// Exit at once: a stopped node leaves nothing running, but the signal handlers stay installed.
process.exit(status);
