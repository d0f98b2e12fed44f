#!/usr/bin/env node
// node_bench.js - the workloads of raw_c.c on Node's `net` module, on 127.0.0.1, server
// and client in this process (one event loop). Prints "workload metric value" lines,
// like raw_c.
//
//   node node_bench.js pingpong SIZE COUNT
//   node node_bench.js bulk TOTAL CHUNK
//   node node_bench.js lines COUNT
//   node node_bench.js accept COUNT
//   node node_bench.js fanin CONNS ROUNDS SIZE THREADS   (THREADS is ignored: one loop)
//
// Every count printed is what the receiving side counted, not the parameter.
'use strict';
const net = require('net');

const LOOPBACK = '127.0.0.1';

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

function listen(onConnection, backlog) {
  return new Promise((resolve, reject) => {
    const server = net.createServer(onConnection);
    server.on('error', reject);
    server.listen({ port: 0, host: LOOPBACK, backlog }, () => resolve(server));
  });
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: LOOPBACK }, () => resolve(sock));
    sock.on('error', reject);
  });
}

function closeServer(server) {
  return new Promise((resolve) => server.close(() => resolve()));
}

// Writes `chunks` (an array of Buffers) in order, respecting backpressure, then ends.
function writeAll(sock, count, chunkAt) {
  return new Promise((resolve, reject) => {
    let i = 0;
    sock.on('error', reject);
    const pump = () => {
      while (i < count) {
        const ok = sock.write(chunkAt(i++));
        if (!ok) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end(resolve);
    };
    pump();
  });
}

// Echoes whatever arrives.
function echo(sock) {
  sock.on('data', (d) => sock.write(d));
  sock.on('error', () => {});
}

async function pingpong(size, count) {
  const server = await listen(echo, 16);
  const sock = await connect(server.address().port);
  const msg = Buffer.alloc(size, 'p');
  let back = 0;
  const t0 = now();
  await new Promise((resolve, reject) => {
    let round = 0;
    let pending = 0;
    sock.on('error', reject);
    sock.on('data', (d) => {
      back += d.length;
      pending += d.length;
      if (pending >= size) {
        pending -= size;
        if (++round === count) return resolve();
        sock.write(msg);
      }
    });
    sock.write(msg);
  });
  const t = now() - t0;
  sock.destroy();
  await closeServer(server);
  console.log(`pingpong_${size} rtt_us ${(t / count * 1e6).toFixed(3)}`);
  console.log(`pingpong_${size} bytes ${back}`);
  return back === size * count;
}

async function bulk(total, chunk) {
  let received = 0;
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  const server = await listen((s) => {
    s.on('data', (d) => { received += d.length; });
    s.on('end', () => done());
  }, 16);
  const sock = await connect(server.address().port);
  const data = Buffer.alloc(chunk, 'b');
  const full = Math.floor(total / chunk);
  const rest = total - full * chunk;
  const t0 = now();
  await writeAll(sock, full + (rest ? 1 : 0), (i) => (i < full ? data : data.subarray(0, rest)));
  await finished;
  const t = now() - t0;
  await closeServer(server);
  console.log(`bulk mib_per_s ${(received / t / (1024 * 1024)).toFixed(1)}`);
  console.log(`bulk bytes ${received}`);
  return received === total;
}

// The receiver splits lines by hand on 'data' (each line a Buffer view, without '\n').
async function lines(count) {
  const data = Buffer.alloc(count * 13);
  for (let i = 0; i < count; ++i) {
    data.write(`line ${String(i % 10000000).padStart(7, '0')}\n`, i * 13, 'latin1');
  }
  let got = 0;
  let payload = 0;
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  const server = await listen((s) => {
    let carry = null;
    s.on('data', (d) => {
      const buf = carry ? Buffer.concat([carry, d]) : d;
      let start = 0;
      let nl;
      while ((nl = buf.indexOf(10, start)) !== -1) {
        const line = buf.subarray(start, nl);
        ++got;
        payload += line.length;
        start = nl + 1;
      }
      carry = start < buf.length ? buf.subarray(start) : null;
    });
    s.on('end', () => {
      if (carry && carry.length) {
        ++got;
        payload += carry.length;
      }
      done();
    });
  }, 16);
  const sock = await connect(server.address().port);
  const n = Math.ceil(data.length / 65536);
  const t0 = now();
  await writeAll(sock, n, (i) => data.subarray(i * 65536, (i + 1) * 65536));
  await finished;
  const t = now() - t0;
  await closeServer(server);
  console.log(`lines lines_per_s ${(got / t).toFixed(0)}`);
  console.log(`lines lines ${got}`);
  console.log(`lines bytes ${payload}`);
  return got === count;
}

async function accept(count) {
  let accepted = 0;
  const server = await listen((s) => {
    ++accepted;
    s.on('error', () => {});
    s.destroy();
  }, 128);
  const port = server.address().port;
  const t0 = now();
  for (let i = 0; i < count; ++i) {
    await new Promise((resolve, reject) => {
      const sock = net.connect({ port, host: LOOPBACK });
      sock.on('error', reject);
      sock.on('data', () => reject(new Error('accept: expected end of stream')));
      sock.on('close', () => resolve());  // the server closed its end; we closed ours
      sock.resume();
    });
  }
  const t = now() - t0;
  await closeServer(server);
  console.log(`accept conns_per_s ${(accepted / t).toFixed(0)}`);
  console.log(`accept conns ${accepted}`);
  return accepted === count;
}

// CONNS connections, all open at once, each doing ROUNDS round trips; the echo server
// and the clients share this process's one event loop.
async function fanin(conns, rounds, size) {
  let accepted = 0;
  let allAccepted;
  const everyoneIn = new Promise((resolve) => { allAccepted = resolve; });
  const server = await listen((s) => {
    echo(s);
    if (++accepted === conns) allAccepted();
  }, 4096);
  const port = server.address().port;
  const socks = [];
  for (let i = 0; i < conns; ++i) socks.push(await connect(port));
  await everyoneIn;
  let verified = 0;
  const t0 = now();
  await Promise.all(socks.map((sock, i) => new Promise((resolve, reject) => {
    const msg = Buffer.alloc(size, 'x');
    msg.write(String(i).padStart(8, '0').slice(0, size), 0, 'latin1');
    let left = rounds;
    let parts = [];
    let have = 0;
    sock.on('error', reject);
    sock.on('data', (d) => {
      parts.push(d);
      have += d.length;
      if (have < size) return;
      const back = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      if (back.equals(msg)) ++verified;
      parts = [];
      have = 0;
      if (--left === 0) return resolve();
      sock.write(msg);
    });
    sock.write(msg);
  })));
  const t = now() - t0;
  for (const sock of socks) sock.destroy();
  await closeServer(server);
  console.log(`fanin msgs_per_s ${(verified / t).toFixed(0)}`);
  console.log(`fanin msgs ${verified}`);
  console.log(`fanin conns ${accepted}`);
  return verified === conns * rounds;
}

async function main() {
  const usage = 'usage: node_bench.js pingpong SIZE COUNT | bulk TOTAL CHUNK | lines COUNT |\n' +
    '       accept COUNT | fanin CONNS ROUNDS SIZE THREADS';
  const workloads = { pingpong: [pingpong, 2], bulk: [bulk, 2], lines: [lines, 1], accept: [accept, 1], fanin: [fanin, 4] };
  const [mode, ...rest] = process.argv.slice(2);
  if (!(mode in workloads) || rest.length !== workloads[mode][1]) {
    console.error(usage);
    process.exit(2);
  }
  const ok = await workloads[mode][0](...rest.map(Number));
  process.exitCode = ok ? 0 : 1;
}

main().catch((e) => {
  console.error(`node_bench: ${e.stack || e}`);
  process.exit(1);
});
