// Turns a Metro bundle of the Expo template app into a program the Hermes VM
// of hermes-engine-cli 0.12.0 runs, for tests/delta_bytecode.rs:
//
//   node prepare.js APP_DIR IN.js OUT.js [IN.js OUT.js ...]
//
// - Lowered with the app's own Babel to what Hermes 0.12 compiles (it has no
//   classes' private members, static blocks, or async functions; the bundle,
//   made for a newer Hermes, keeps them).
// - Given a prelude that stands in for the native side (a bridge config and
//   module proxies that answer every call with another stand-in), so every
//   module factory runs to its end instead of the first native call throwing.
// - Its entry calls (`__r(N);` at the end) replaced by a driver that requires
//   every module in turn and prints the shape of what it exports, or what it
//   threw: one line per module, the same for two compiles that behave alike.
const fs = require('fs');
const [, , appDir, ...pairs] = process.argv;
const fromApp = (name) => require(require.resolve(name, { paths: [appDir] }));
const babel = fromApp('@babel/core');
const plugins = [
  '@babel/plugin-transform-class-static-block',
  '@babel/plugin-transform-class-properties',
  '@babel/plugin-transform-private-methods',
  '@babel/plugin-transform-private-property-in-object',
  '@babel/plugin-transform-classes',
  '@babel/plugin-transform-async-generator-functions',
  '@babel/plugin-transform-async-to-generator',
].map((name) => fromApp(name));

const prelude = `
var __otapubStandIn = function () {
  return new Proxy(function () {}, {
    get: function (t, k) { return k === 'then' || typeof k === 'symbol' ? undefined : k === 'length' ? 0 : __otapubStandIn(); },
    apply: function () { return __otapubStandIn(); },
    construct: function () { return {}; },
  });
};
var __fbBatchedBridgeConfig = { remoteModuleConfig: [] };
var nativeModuleProxy = new Proxy({}, { get: function (t, k) { return typeof k === 'symbol' ? undefined : __otapubStandIn(); } });
var __turboModuleProxy = function () { return __otapubStandIn(); };
`;

const driver = (modules) => `
;(function () {
  var loaded = 0, threw = 0;
  for (var id = 0; id < ${modules}; id++) {
    try {
      var m = __r(id);
      var keys = m !== null && (typeof m === 'object' || typeof m === 'function') ? Object.keys(m).sort().slice(0, 12) : [];
      var shape = typeof m === 'function' ? 'function ' + m.name + '/' + m.length : typeof m;
      print(id + ' ' + shape + ' ' + keys.join(','));
      loaded++;
    } catch (e) {
      print(id + ' threw ' + (e && e.message ? String(e.message).split('\\n')[0] : String(e)));
      threw++;
    }
  }
  print('modules loaded ' + loaded + ', threw ' + threw);
})();
`;

for (let i = 0; i + 1 < pairs.length; i += 2) {
  const source = fs.readFileSync(pairs[i], 'utf8');
  const lowered = babel.transformSync(source, {
    babelrc: false,
    configFile: false,
    compact: false,
    sourceType: 'script',
    plugins,
  }).code;
  const modules = (lowered.match(/^__d\(/gm) || []).length;
  const body = lowered.replace(/(\n__r\(\d+\);)+\s*$/, '\n');
  if (modules === 0 || body === lowered) {
    throw new Error(`${pairs[i]}: not a Metro bundle (${modules} modules, entry calls ${body === lowered ? 'not ' : ''}found)`);
  }
  fs.writeFileSync(pairs[i + 1], prelude + body + driver(modules));
}
