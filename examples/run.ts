/**
 * `npm run example -- NAME` runs the example `examples/NAME.ts` (the script builds it first);
 * `npm run example` lists them. Every example ends by itself, with status 0 when all went as
 * it shows.
 */
import { readdirSync } from 'node:fs';
import process from 'node:process';

const here = new URL('./', import.meta.url);
const examples = readdirSync(here)
  .filter((file) => file.endsWith('.js') && file !== 'run.js')
  .map((file) => file.slice(0, -'.js'.length))
  .sort();
const usage = `npm run example -- NAME, where NAME is one of: ${examples.join(', ')}\n`;

const [name] = process.argv.slice(2);
if (name === undefined) {
  process.stdout.write(usage);
} else if (examples.includes(name)) {
  await import(new URL(`${name}.js`, here).href);
} else {
  process.stderr.write(`no example named "${name}"\n${usage}`);
  process.exitCode = 2;
}
