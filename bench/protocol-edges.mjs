#!/usr/bin/env node
/**
 * Usage: node bench/protocol-edges.mjs [--url http://127.0.0.1:8787]
 *
 * Sends a running Worker (`npm start`, or any wrangler dev) malformed HTTP over a raw socket, the kinds a
 * client library never writes, and prints who answered and how: the local runtime (workerd's HTTP server,
 * before the Worker runs: a plain-text or empty answer) or the Worker (JSON with an error code). What deployed
 * Workers do instead is Cloudflare's front line's business, noted in docs/memory.md beside the figures.
 */
import { connect } from "node:net";
import { parseCli } from "../scripts/lib/cli.mjs";

const spec = {
  name: "protocol-edges",
  summary: "Sends malformed HTTP to a running Worker over a raw socket and prints each answer's status and body.",
  options: { url: { type: "string", default: "http://127.0.0.1:8787", value: "URL", help: "The running Worker's base URL." } },
};
const { values } = parseCli(spec);
const { hostname, port } = new URL(values.url);

/** Writes `head` then `body` (strings or bytes), optionally half-closes, and collects the answer for 3 s. */
function raw(head, body = "", { end = true, waitMs = 3000 } = {}) {
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let answer = "";
    socket.on("data", (d) => (answer += d.toString("latin1")));
    const done = (how) => {
      socket.destroy();
      resolve({ how, answer });
    };
    socket.on("error", (e) => done(`error ${e.code ?? e.message}`));
    socket.on("close", () => done("closed"));
    socket.on("connect", () => {
      socket.write(head);
      if (body) socket.write(body);
      if (end) socket.end();
    });
    setTimeout(() => done("timeout"), waitMs);
  });
}

const host = `Host: ${hostname}:${port}\r\n`;
const cases = [
  ["Content-Length not a number", `POST /v1/classify HTTP/1.1\r\n${host}Content-Type: image/png\r\nContent-Length: abc\r\n\r\n`],
  [
    "two different Content-Lengths",
    `POST /v1/classify HTTP/1.1\r\n${host}Content-Type: image/png\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n12345`,
  ],
  [
    "Content-Length and chunked together",
    `POST /v1/classify HTTP/1.1\r\n${host}Content-Type: image/png\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  ],
  [
    "broken chunked encoding",
    `POST /v1/classify HTTP/1.1\r\n${host}Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n`,
  ],
  [
    "body shorter than Content-Length, then half-close",
    `POST /v1/classify HTTP/1.1\r\n${host}Content-Type: image/png\r\nContent-Length: 1000\r\n\r\n\x89PNG\r\n\x1a\n`,
  ],
  ["64 KiB header line", `GET /healthz HTTP/1.1\r\n${host}X-Big: ${"a".repeat(65536)}\r\n\r\n`],
  ["10,000 headers", `GET /healthz HTTP/1.1\r\n${host}${"X-A: b\r\n".repeat(10000)}\r\n`],
  ["16 KiB path", `GET /${"p".repeat(16384)} HTTP/1.1\r\n${host}\r\n`],
  ["not HTTP at all", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n"],
];

for (const [name, head] of cases) {
  const { how, answer } = await raw(head);
  const statusLine = answer.split("\r\n")[0] || "(no answer)";
  const body = answer.split("\r\n\r\n").slice(1).join("").slice(0, 160).replace(/\s+/g, " ");
  // The Worker answers JSON; the runtime (workerd's HTTP parser, or wrangler dev's proxy in front of the Worker) text.
  const who = body.startsWith("{") ? "Worker (JSON)" : answer ? "runtime" : "-";
  console.log(`${name.padEnd(50)} ${statusLine.padEnd(34)} ${who.padEnd(14)} ${how}  ${body}`);
}
