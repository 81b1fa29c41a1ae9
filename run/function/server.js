// A stand-in for Kyma's Node.js Function runtime, enough for the tutorial: every request (any path,
// any method) calls handler.main(event, context) and answers 200 with its return value, as the
// Function behind `function-example.<domain>` does. GET /healthz answers 200 "OK" for the startup
// check (the runtime has the same endpoint). No dependencies.
//
// Configuration (environment): PORT (8001), HOST (bind address, 127.0.0.1), FUNC_NAME (function).
'use strict';

const http = require('node:http');
const handler = require('./handler.js');

const port = Number(process.env.PORT ?? 8001);
const host = process.env.HOST ?? '127.0.0.1';
const context = { 'function-name': process.env.FUNC_NAME ?? 'function', runtime: `nodejs${process.versions.node.split('.')[0]}` };

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
      return;
    }
    const event = {
      data: Buffer.concat(chunks).toString('utf8'),
      extensions: { request: req, response: res },
    };
    try {
      const out = await handler.main(event, context);
      if (!res.writableEnded) {
        const body = typeof out === 'string' ? out : JSON.stringify(out ?? '');
        res.writeHead(200, { 'content-type': typeof out === 'string' ? 'text/plain; charset=utf-8' : 'application/json' });
        res.end(body);
      }
    } catch (err) {
      console.error(err);
      if (!res.writableEnded) res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error');
    }
    console.log(`${req.method} ${req.url} host=${req.headers.host} -> ${res.statusCode}`);
  });
});

server.listen(port, host, () => console.log(`function listening on http://${host}:${port}`));
server.on('error', (err) => {
  console.error(`cannot listen on ${host}:${port}: ${err.message}`);
  process.exit(1);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    // Idle keep-alive connections would hold close() open; the process is disposable.
    setTimeout(() => process.exit(0), 500).unref();
  });
}
