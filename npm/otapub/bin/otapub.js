#!/usr/bin/env node
// Runs otapub's native binary from this platform's package, one of otapub's
// optionalDependencies (@otapub/cli-<os>-<cpu>): npm installs only the one
// whose `os` and `cpu` match the machine, so nothing is downloaded outside
// the registry and there is no install script. OTAPUB_BINARY=/path/to/otapub
// runs that binary instead (a `cargo install otapub`, a local build).
'use strict';

const { spawn } = require('child_process');
const { constants } = require('os');
const { targets } = require('../targets.json');
const { version } = require('../package.json');

// Launcher failures are the environment's (SPEC exit code 3), not otapub's.
const EXIT_ENVIRONMENT = 3;

function fail(message) {
  process.stderr.write(`otapub: ${message}\n`);
  process.exit(EXIT_ENVIRONMENT);
}

function binaryPath() {
  const override = process.env.OTAPUB_BINARY;
  if (override) return override;

  const host = `${process.platform}-${process.arch}`;
  const target = targets.find((t) => `${t.os}-${t.cpu}` === host);
  if (!target) {
    const known = targets.map((t) => `${t.os}-${t.cpu}`).join(', ');
    fail(
      `there is no prebuilt otapub for ${host} (there is for ${known}).\n` +
        'Build it from source with `cargo install otapub` (https://rustup.rs for cargo) ' +
        'and run that, or point OTAPUB_BINARY at it.',
    );
  }
  let binary;
  try {
    binary = require.resolve(`${target.package}/${target.exe}`);
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e;
    fail(
      `${target.package}, the package that holds otapub's binary for ${host}, is not installed.\n` +
        'npm installs it as an optional dependency of otapub: it is left out when optional ' +
        'dependencies are omitted (--omit=optional, --no-optional, omit=optional in .npmrc) ' +
        'or when node_modules was installed on another platform.\n' +
        'Reinstall without omitting them (rm -rf node_modules && npm install), ' +
        `or add it yourself: npm i -D ${target.package}@${version}`,
    );
  }
  const installed = require(`${target.package}/package.json`).version;
  if (installed !== version) {
    process.stderr.write(
      `otapub: warning: ${target.package} is ${installed} but otapub is ${version}; ` +
        `run npm i -D ${target.package}@${version}\n`,
    );
  }
  return binary;
}

const binary = binaryPath();
const child = spawn(binary, process.argv.slice(2), { stdio: 'inherit' });

// Ctrl-C in a terminal reaches otapub directly (same process group): the
// launcher only waits for it to exit. A SIGTERM or SIGHUP sent to the
// launcher alone is passed on.
const forwarded = {
  SIGINT: () => {},
  SIGTERM: () => child.kill('SIGTERM'),
  SIGHUP: () => child.kill('SIGHUP'),
};
for (const [signal, handler] of Object.entries(forwarded)) process.on(signal, handler);

child.on('error', (e) => {
  const hint =
    e.code === 'ENOENT'
      ? 'the file does not exist'
      : e.code === 'EACCES'
        ? 'it is not executable (chmod +x it, or reinstall the package)'
        : e.message;
  fail(`cannot run ${binary}: ${hint}`);
});

child.on('exit', (code, signal) => {
  if (signal) {
    // End the way otapub ended, so a shell or CI sees the same signal.
    for (const [s, handler] of Object.entries(forwarded)) process.removeListener(s, handler);
    process.kill(process.pid, signal);
    // Only reached where a process cannot signal itself that way: the shell's convention.
    process.exit(128 + (constants.signals[signal] || 0));
  }
  process.exit(code);
});
