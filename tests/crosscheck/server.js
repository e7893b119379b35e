// Starts telegram-test-api, a third-party Bot API emulator, for the cross-check tests.
//
//   node tests/crosscheck/server.js PORT
//
// Serves the Bot API at http://127.0.0.1:PORT/bot<token>/<method> and the emulator's
// client API (POST /sendMessage, /sendCommand, /sendCallback, /getUpdates,
// /getUpdatesHistory) on the same port, then prints one line on stdout:
//
//   ready telegram-test-api 4.2.1 http://127.0.0.1:PORT
//
// Stops on SIGTERM or SIGINT, and when stdin closes, so a test run that dies never
// leaves the server behind.
'use strict';

const TelegramServer = require('telegram-test-api');
const { version } = require('telegram-test-api/package.json');

async function main() {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error('usage: node server.js PORT (1-65535)');
    process.exit(2);
  }
  const server = new TelegramServer({ port, host: '127.0.0.1' });
  await server.start();

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await server.stop();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();

  process.stdout.write(`ready telegram-test-api ${version} ${server.config.apiURL}\n`);
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
