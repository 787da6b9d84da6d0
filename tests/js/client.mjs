// TypeScript-SDK MCP client for the mcp-gateway end-to-end tests.
//
// Usage: node client.mjs --url http://127.0.0.1:A/mcp [--alt-url http://127.0.0.1:B/mcp]
//                        [--calls N] [--timeout SECONDS]
//
// Initializes a session with `Client` + `StreamableHTTPClientTransport`, lists the tools,
// makes N `whoami` calls, closes the session (DELETE) and prints ONE JSON line on stdout:
// {"ok": true, "tools": [...], "calls": [{server, session, ...}], "client_session_id": ...}
// or {"ok": false, "error": "..."} with exit status 1. With --alt-url, successive HTTP
// requests alternate between the two URLs' host:port (a load balancer over replicas).

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

function parseArgs(argv) {
  const args = { url: undefined, altUrl: undefined, calls: 5, timeout: 60 };
  for (let i = 0; i < argv.length; i += 1) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--url': args.url = value; i += 1; break;
      case '--alt-url': args.altUrl = value; i += 1; break;
      case '--calls': args.calls = Number.parseInt(value, 10); i += 1; break;
      case '--timeout': args.timeout = Number.parseFloat(value); i += 1; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!args.url) throw new Error('--url is required');
  if (!Number.isInteger(args.calls) || args.calls < 0) throw new Error('--calls must be a non-negative integer');
  return args;
}

// A fetch that sends request i to targets[i % targets.length], keeping path and query,
// and records what it saw on the wire.
function alternatingFetch(targets, wire) {
  let next = 0;
  return async (input, init) => {
    const target = new URL(targets[next % targets.length]);
    next += 1;
    const url = new URL(input instanceof Request ? input.url : String(input));
    url.protocol = target.protocol;
    url.host = target.host;
    wire.requestsByTarget[url.host] = (wire.requestsByTarget[url.host] ?? 0) + 1;
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    const sent = headers.get('mcp-session-id');
    if (sent) wire.sessionIds.add(sent);
    const response = await fetch(url, init);
    wire.statuses[response.status] = (wire.statuses[response.status] ?? 0) + 1;
    const received = response.headers.get('mcp-session-id');
    if (received) wire.sessionIds.add(received);
    return response;
  };
}

function toolText(result) {
  if (result.isError) throw new Error(`tool returned an error: ${JSON.stringify(result.content)}`);
  const texts = result.content.filter((block) => block.type === 'text').map((block) => block.text);
  if (texts.length !== 1) throw new Error(`expected one text block, got ${JSON.stringify(result.content)}`);
  return texts[0];
}

async function run(args) {
  const wire = { requestsByTarget: {}, sessionIds: new Set(), statuses: {} };
  const targets = [args.url, ...(args.altUrl ? [args.altUrl] : [])];
  const transport = new StreamableHTTPClientTransport(new URL(args.url), {
    fetch: alternatingFetch(targets, wire),
  });
  const client = new Client({ name: 'mcp-gateway-e2e-js', version: '0.0.0' });
  await client.connect(transport);
  const clientSessionId = transport.sessionId ?? null;
  const protocolVersion = transport.protocolVersion ?? null;
  const tools = (await client.listTools()).tools.map((tool) => tool.name).sort();
  const calls = [];
  for (let i = 0; i < args.calls; i += 1) {
    calls.push(JSON.parse(toolText(await client.callTool({ name: 'whoami', arguments: {} }))));
  }
  await transport.terminateSession();
  await client.close();
  return {
    tools,
    calls,
    client_session_id: clientSessionId,
    protocol_version: protocolVersion,
    requests_by_target: wire.requestsByTarget,
    client_session_ids: [...wire.sessionIds].sort(),
    statuses: wire.statuses,
  };
}

async function main() {
  const started = Date.now();
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(error) })}\n`);
    return 1;
  }
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${args.timeout}s`)), args.timeout * 1000);
  });
  try {
    const result = await Promise.race([run(args), deadline]);
    const elapsed = (Date.now() - started) / 1000;
    process.stdout.write(`${JSON.stringify({ ok: true, scenario: 'ts-session', elapsed_s: elapsed, ...result })}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`${error?.stack ?? error}\n`);
    process.stdout.write(`${JSON.stringify({ ok: false, scenario: 'ts-session', error: String(error) })}\n`);
    return 1;
  } finally {
    clearTimeout(timer);
  }
}

process.exitCode = await main();
// Open sockets (a GET stream) must not keep the process alive past the result.
process.exit(process.exitCode);
