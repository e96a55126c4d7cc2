import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { socketLimits } from '../../adapters/websocket/dial.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../../lib/codec/messages.js';

/**
 * The raw WebSocket round trip that protocol figures are compared with: a `ws` client sends a
 * text frame, a `ws` server sends it back. Both ends use the WebSocket transport's socket
 * settings (no compression, the same payload limit). The server runs in this process, or in a
 * process of its own (`EchoClient.toProcess`) when the figure to compare with crosses processes.
 */

const LIMITS = socketLimits(DEFAULT_MAX_FRAME_BYTES);

function text(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** Starts an echo server on 127.0.0.1; resolves with it and its port. */
async function echoServer(): Promise<{ server: WebSocketServer; port: number }> {
  const server = new WebSocketServer({ ...LIMITS, host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  server.on('connection', (ws) => {
    ws.on('message', (data) => {
      ws.send(text(data));
    });
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('echo server has no port');
  return { server, port: address.port };
}

export class EchoClient {
  private constructor(
    private readonly client: WebSocket,
    private readonly shut: () => Promise<void>,
  ) {}

  /** An echo whose server runs in this process. */
  static async inProcess(): Promise<EchoClient> {
    const { server, port } = await echoServer();
    const client = await connect(port);
    return new EchoClient(client, async () => {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    });
  }

  /** An echo whose server runs in a child process (this module, run as a program). */
  static async toProcess(): Promise<EchoClient> {
    const child: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const stdout = child.stdout;
    if (stdout === null) throw new Error('the echo process has no stdout');
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: stdout }).once('line', (line) => {
        resolve(Number(line));
      });
      child.once('exit', () => {
        reject(new Error('the echo process exited'));
      });
    });
    const client = await connect(port);
    return new EchoClient(client, async () => {
      child.kill('SIGKILL');
      await Promise.resolve();
    });
  }

  /** One round trip of `frame`, in ms. */
  roundTrip(frame: string): Promise<number> {
    return new Promise((resolve) => {
      const start = performance.now();
      this.client.once('message', () => {
        resolve(performance.now() - start);
      });
      this.client.send(frame);
    });
  }

  async close(): Promise<void> {
    this.client.terminate();
    await this.shut();
  }
}

async function connect(port: number): Promise<WebSocket> {
  const client = new WebSocket(`ws://127.0.0.1:${port}`, LIMITS);
  await new Promise<void>((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  return client;
}

// Run as a program: serve echoes until killed, after printing the port.
const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const { port } = await echoServer();
  process.stdout.write(`${port}\n`);
}
