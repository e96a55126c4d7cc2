import { ConfigError } from './errors.js';

/**
 * Settings every peer of a transport must agree on, which the node hands to `Transport.start`:
 * name → canonical value, in a fixed order. A transport knows nothing of their meaning. It
 * compares them with each peer's, before any frame flows, and refuses a peer whose settings
 * differ (the node's timing settings: each node's restart silence and lease arithmetic use its
 * own values, so nodes that disagree on them are unsafe together).
 *
 * What every adapter shares lives here: checking them, one canonical text for a wire (query
 * string syntax: any value fits an HTTP header or a message field, and equal settings in the
 * same order give the same text), and naming the first setting that differs.
 */
export type TransportSettings = Readonly<Record<string, string>>;

/** The first setting two sides disagree on, with both values (null: not set on that side). */
export interface SettingsMismatch {
  readonly setting: string;
  readonly ours: string | null;
  readonly theirs: string | null;
}

export const NO_SETTINGS: TransportSettings = Object.freeze({});

/** Settings names: short identifiers. */
const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
export const MAX_SETTINGS = 32;
export const MAX_SETTING_VALUE_LENGTH = 256;
/** The longest canonical text accepted from a peer (the most settings of the longest values). */
export const MAX_SETTINGS_TEXT_LENGTH = 4096;

/** Checks settings given to a transport; a frozen copy, in the same order. */
export function checkSettings(value: unknown): TransportSettings {
  if (value === undefined) return NO_SETTINGS;
  const problem = settingsProblem(value);
  if (problem !== null) throw new ConfigError(`settings ${problem}`);
  const settings = Object.freeze({ ...(value as TransportSettings) });
  if (encodeSettings(settings).length > MAX_SETTINGS_TEXT_LENGTH) {
    throw new ConfigError(`settings must encode to at most ${MAX_SETTINGS_TEXT_LENGTH} characters`);
  }
  return settings;
}

/** The canonical text of `settings`: `name=value&…` in their order, percent-encoded. */
export function encodeSettings(settings: TransportSettings): string {
  return new URLSearchParams(Object.entries(settings)).toString();
}

/** Settings from a peer's canonical text, or null if it is not one (too long, a bad name, a repeat). */
export function decodeSettings(text: string): TransportSettings | null {
  if (text.length > MAX_SETTINGS_TEXT_LENGTH) return null;
  const entries = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(text)) {
    // Names are checked before they become keys: `__proto__` must not slip through as one.
    if (!NAME.test(name) || entries.has(name)) return null;
    entries.set(name, value);
  }
  const settings = Object.fromEntries(entries);
  return settingsProblem(settings) === null ? Object.freeze(settings) : null;
}

/**
 * The first setting (in `ours`' order, then the ones only `theirs` has) whose value differs, or
 * null when both sides have the same settings. Order does not matter, values must be equal.
 */
export function settingsMismatch(
  ours: TransportSettings,
  theirs: TransportSettings,
): SettingsMismatch | null {
  for (const [setting, value] of Object.entries(ours)) {
    const other = Object.hasOwn(theirs, setting) ? (theirs[setting] ?? null) : null;
    if (other !== value) return { setting, ours: value, theirs: other };
  }
  for (const [setting, value] of Object.entries(theirs)) {
    if (!Object.hasOwn(ours, setting)) return { setting, ours: null, theirs: value };
  }
  return null;
}

function settingsProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'must be an object of setting names to string values';
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_SETTINGS) return `must hold at most ${MAX_SETTINGS} entries`;
  for (const [name, setting] of entries) {
    if (!NAME.test(name)) return `names must be identifiers of 1 to 64 characters`;
    if (typeof setting !== 'string' || setting.length > MAX_SETTING_VALUE_LENGTH) {
      return `["${name}"] must be a string of at most ${MAX_SETTING_VALUE_LENGTH} characters`;
    }
  }
  return null;
}
