import assert from 'node:assert/strict';
import { ConfigError } from '../../lib/errors.js';
import { agreedSettings, DEFAULTS } from '../../lib/options.js';
import {
  checkSettings,
  decodeSettings,
  encodeSettings,
  MAX_SETTINGS_TEXT_LENGTH,
  NO_SETTINGS,
  settingsMismatch,
} from '../../lib/settings.js';

describe('transport settings', function () {
  it('encodes in the given order, as text any header carries, and decodes back', function () {
    const settings = { leaseMs: '1000', odd: 'a b&c=d/é\n', empty: '' };
    const text = encodeSettings(settings);
    assert.equal(text, 'leaseMs=1000&odd=a+b%26c%3Dd%2F%C3%A9%0A&empty=');
    assert.match(text, /^[\x21-\x7e]*$/);
    assert.deepEqual(decodeSettings(text), settings);
    assert.deepEqual(Object.keys(decodeSettings(text) ?? {}), ['leaseMs', 'odd', 'empty']);
    assert.equal(encodeSettings(NO_SETTINGS), '');
    assert.deepEqual(decodeSettings(''), {});
  });

  it("refuses a peer's text that is not one: a repeat, a bad name, too long", function () {
    assert.equal(decodeSettings('a=1&a=1'), null);
    assert.equal(decodeSettings('1a=1'), null);
    assert.equal(decodeSettings('__proto__=1'), null);
    assert.equal(decodeSettings(`a=${'x'.repeat(MAX_SETTINGS_TEXT_LENGTH)}`), null);
    assert.equal(decodeSettings(`a=${'x'.repeat(257)}`), null);
  });

  it('names the first setting that differs, with both values, whatever the order', function () {
    const ours = { leaseMs: '1000', marginMs: '10' };
    assert.equal(settingsMismatch(ours, { marginMs: '10', leaseMs: '1000' }), null);
    assert.deepEqual(settingsMismatch(ours, { leaseMs: '1000', marginMs: '20' }), {
      setting: 'marginMs',
      ours: '10',
      theirs: '20',
    });
    assert.deepEqual(settingsMismatch(ours, { leaseMs: '2000', marginMs: '20' }), {
      setting: 'leaseMs',
      ours: '1000',
      theirs: '2000',
    });
    assert.deepEqual(settingsMismatch(ours, { marginMs: '10' }), {
      setting: 'leaseMs',
      ours: '1000',
      theirs: null,
    });
    assert.deepEqual(settingsMismatch(ours, { ...ours, maxTtlMs: '1' }), {
      setting: 'maxTtlMs',
      ours: null,
      theirs: '1',
    });
    assert.equal(settingsMismatch(NO_SETTINGS, {}), null);
  });

  it('checks what a transport is started with, with a ConfigError', function () {
    assert.equal(checkSettings(undefined), NO_SETTINGS);
    const checked = checkSettings({ a: '1', b: '2' });
    assert.ok(Object.isFrozen(checked));
    for (const bad of [
      null,
      [],
      'a=1',
      { a: 1 },
      { '': '1' },
      { 'a b': '1' },
      { a: 'x'.repeat(257) },
    ]) {
      assert.throws(() => checkSettings(bad), ConfigError, JSON.stringify(bad));
    }
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, k) => [`s${k}`, '1']));
    assert.throws(() => checkSettings(many), ConfigError);
  });

  it("gives a node's timing settings in a fixed order, as their shortest text", function () {
    assert.deepEqual(Object.entries(agreedSettings(DEFAULTS)), [
      ['leaseMs', '1000'],
      ['maxClockDrift', '0.01'],
      ['marginMs', '10'],
      ['maxTtlMs', '60000'],
    ]);
  });
});
