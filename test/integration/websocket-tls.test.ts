import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { WebSocketTransport } from '../../adapters/websocket/index.js';
import type { TlsOptions } from '../../adapters/websocket/index.js';
import {
  CLUSTER,
  FAST,
  freePort,
  puppetDial,
  puppetHeaders,
  SECRET,
  waitFor,
} from './websocket-harness.js';

/**
 * wss with mutual TLS, on certificates made for the test: a throwaway CA signs one certificate
 * per node (for 127.0.0.1, good as server and as client), and a rogue CA signs an impostor's.
 * Needs the `openssl` command to make its certificates.
 */

interface Pki {
  readonly dir: string;
  readonly ca: Buffer;
  cert(name: string): { cert: Buffer; key: Buffer };
}

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function makePki(names: string[], rogue: string[]): { pki: Pki; rogueCa: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'synod-tls-'));
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string): void => {
    run([
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
  };
  writeFileSync(
    join(dir, 'leaf.ext'),
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ].join('\n'),
  );
  const makeLeaf = (name: string, ca: string): void => {
    run(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    run([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-extfile',
      'leaf.ext',
    ]);
  };
  makeCa('ca');
  makeCa('rogue-ca');
  for (const name of names) makeLeaf(name, 'ca');
  for (const name of rogue) makeLeaf(name, 'rogue-ca');
  const read = (file: string): Buffer => readFileSync(join(dir, file));
  return {
    pki: {
      dir,
      ca: read('ca.crt'),
      cert: (name) => ({ cert: read(`${name}.crt`), key: read(`${name}.key`) }),
    },
    rogueCa: read('rogue-ca.crt'),
  };
}

describe('websocket transport: wss with mutual TLS', function () {
  let pki: Pki | null = null;
  let rogueCa: Buffer | null = null;
  const transports: WebSocketTransport[] = [];

  before(function () {
    // Certificates are made with the openssl command (.ci/run installs it where it is missing).
    assert.ok(hasOpenssl(), 'the openssl command is needed to make the test certificates');
    ({ pki, rogueCa } = makePki(['x', 'y'], ['impostor']));
  });

  after(function () {
    if (pki !== null) rmSync(pki.dir, { recursive: true, force: true });
  });

  afterEach(async function () {
    await Promise.all(transports.splice(0).map((t) => t.close()));
  });

  function tlsFor(name: string): TlsOptions {
    assert.ok(pki);
    return { ...pki.cert(name), ca: pki.ca };
  }

  async function startPair(): Promise<{
    x: WebSocketTransport;
    y: WebSocketTransport;
    urls: { x: string; y: string };
    frames: string[];
  }> {
    const [px, py] = [await freePort(), await freePort()];
    const urls = { x: `wss://127.0.0.1:${px}/`, y: `wss://127.0.0.1:${py}/` };
    const make = (self: 'x' | 'y', port: number): WebSocketTransport =>
      new WebSocketTransport({
        self,
        peers: urls,
        listen: { host: '127.0.0.1', port },
        cluster: CLUSTER,
        secret: SECRET,
        tls: tlsFor(self),
        ...FAST,
      });
    const x = make('x', px);
    const y = make('y', py);
    transports.push(x, y);
    const frames: string[] = [];
    x.onMessage((from, frame) => frames.push(`${from}:${frame}`));
    y.onMessage((from, frame) => frames.push(`${from}:${frame}`));
    await Promise.all([x.start(), y.start()]);
    await waitFor(
      'x and y connected',
      () => x.stats().connections === 1 && y.stats().connections === 1,
    );
    return { x, y, urls, frames };
  }

  it('connects two nodes over wss, each verifying the other against the CA', async function () {
    const { x, y, frames } = await startPair();
    x.send('y', 'over tls');
    y.send('x', 'and back');
    await waitFor('both frames', () => frames.length === 2);
    assert.deepEqual(frames.sort(), ['x:over tls', 'y:and back']);
    assert.equal(x.stats().handshakeRejections.tls, 0);
  });

  it('refuses a client without a certificate, or with one from another CA', async function () {
    const { x, y, urls, frames } = await startPair();
    const headers = puppetHeaders({ from: 'y', to: 'x' });
    assert.ok(pki && rogueCa);

    const noCert = await puppetDial(urls.x, headers, { ca: pki.ca });
    assert.equal(noCert.ok, false);
    await waitFor('refusal counted', () => x.stats().handshakeRejections.tls === 1);

    const impostor = await puppetDial(urls.x, puppetHeaders({ from: 'y', to: 'x' }), {
      ca: pki.ca,
      ...pki.cert('impostor'),
    });
    assert.equal(impostor.ok, false);
    await waitFor('refusal counted', () => x.stats().handshakeRejections.tls === 2);
    // Neither got as far as the HMAC check.
    assert.equal(x.stats().handshakeRejections['bad-signature'], 0);

    // The pair still works.
    y.send('x', 'still here');
    await waitFor('the frame', () => frames.includes('y:still here'));
  });

  it('still requires the HMAC handshake from a client with a valid certificate', async function () {
    const { x, urls } = await startPair();
    assert.ok(pki);
    const result = await puppetDial(
      urls.x,
      puppetHeaders({ from: 'y', to: 'x', secret: 'a-different-secret-16b' }),
      { ca: pki.ca, ...pki.cert('y') },
    );
    assert.equal(result.ok ? 101 : result.status, 401);
    assert.equal(x.stats().handshakeRejections['bad-signature'], 1);
  });

  it('destroys a connection that never starts its TLS handshake after handshakeTimeoutMs', async function () {
    const port = await freePort();
    const x = new WebSocketTransport({
      self: 'x',
      peers: { x: `wss://127.0.0.1:${port}/`, y: `wss://127.0.0.1:${await freePort()}/` },
      listen: { host: '127.0.0.1', port },
      cluster: CLUSTER,
      secret: SECRET,
      tls: tlsFor('x'),
      ...FAST,
      handshakeTimeoutMs: 200,
    });
    transports.push(x);
    await x.start();
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const start = performance.now();
    await new Promise<void>((resolve) =>
      socket.once('close', () => {
        resolve();
      }),
    );
    const after = performance.now() - start;
    assert.ok(after >= 150 && after < 1500, `closed after ${after.toFixed(0)} ms`);
    await waitFor('counted', () => x.stats().handshakeRejections.timeout === 1);
  });

  it('does not connect to a listener whose certificate is not from its CA', async function () {
    assert.ok(pki && rogueCa);
    const [px, pi] = [await freePort(), await freePort()];
    const urls = { x: `wss://127.0.0.1:${px}/`, impostor: `wss://127.0.0.1:${pi}/` };
    const x = new WebSocketTransport({
      self: 'x',
      peers: urls,
      listen: { host: '127.0.0.1', port: px },
      cluster: CLUSTER,
      secret: SECRET,
      tls: tlsFor('x'),
      ...FAST,
    });
    // Knows the secret, but its certificate comes from the rogue CA (which it trusts itself).
    const impostor = new WebSocketTransport({
      self: 'impostor',
      peers: urls,
      listen: { host: '127.0.0.1', port: pi },
      cluster: CLUSTER,
      secret: SECRET,
      tls: { ...pki.cert('impostor'), ca: rogueCa },
      ...FAST,
    });
    transports.push(x, impostor);
    await Promise.all([x.start(), impostor.start()]);
    await waitFor(
      'both sides refused a TLS handshake',
      () => x.stats().handshakeRejections.tls > 0 && impostor.stats().handshakeRejections.tls > 0,
    );
    assert.equal(x.stats().connections, 0);
    assert.equal(impostor.stats().connections, 0);
  });
});
