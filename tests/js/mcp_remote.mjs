// Drives `mcp-remote` (the stdio bridge Claude Desktop and other stdio-only clients use
// to reach remote MCP servers) against a legacy HTTP+SSE endpoint, over its stdin/stdout.
//
// Usage: node mcp_remote.mjs --url http://127.0.0.1:PORT/sse [--calls N] [--timeout SECONDS]
// Sends initialize, notifications/initialized and N `whoami` tool calls, then prints ONE line:
// {"ok": true, "calls": [{server, session, ...}], "protocol_version": "..."}
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

function parseArgs(argv) {
  const args = { url: undefined, calls: 5, timeout: 60 };
  for (let i = 0; i < argv.length; i += 1) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--url': args.url = value; i += 1; break;
      case '--calls': args.calls = Number.parseInt(value, 10); i += 1; break;
      case '--timeout': args.timeout = Number.parseFloat(value); i += 1; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!args.url) throw new Error('--url is required');
  if (!Number.isInteger(args.calls) || args.calls < 1) throw new Error('--calls must be a positive integer');
  return args;
}

function print(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const here = path.dirname(fileURLToPath(import.meta.url));
  const bin = path.join(here, 'node_modules', '.bin', 'mcp-remote');
  const child = spawn(bin, [args.url, '--transport', 'sse-only', '--allow-http'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, MCP_REMOTE_CONFIG_DIR: path.join(here, 'node_modules', '.mcp-remote-auth') },
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d.toString()).slice(-4000); });
  const pending = new Map();
  createInterface({ input: child.stdout }).on('line', (line) => {
    let msg;
    try { msg = JSON.parse(line); } catch { return; }
    if (msg.id !== undefined && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const timer = setTimeout(() => {
    print({ ok: false, error: `timed out after ${args.timeout}s`, stderr });
    child.kill('SIGKILL');
    process.exit(1);
  }, args.timeout * 1000);
  const request = (id, method, params) => new Promise((resolve) => {
    pending.set(id, resolve);
    child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
  });
  const init = await request(1, 'initialize', {
    protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'mcp-remote-e2e', version: '1' },
  });
  if (init.error) throw new Error(`initialize failed: ${JSON.stringify(init.error)}`);
  child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
  const calls = [];
  for (let i = 0; i < args.calls; i += 1) {
    const resp = await request(10 + i, 'tools/call', { name: 'whoami', arguments: {} });
    if (resp.error) throw new Error(`tools/call failed: ${JSON.stringify(resp.error)}`);
    calls.push(JSON.parse(resp.result.content[0].text));
  }
  clearTimeout(timer);
  child.stdin.end();
  child.kill('SIGTERM');
  print({ ok: true, scenario: 'mcp-remote', protocol_version: init.result.protocolVersion, calls });
}

main().catch((error) => {
  print({ ok: false, scenario: 'mcp-remote', error: String(error) });
  process.exit(1);
});
