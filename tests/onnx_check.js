// Runs an exported model in ONNX Runtime and compares it with `mtl_dist
// predict` on the same rows (tests/e2e_onnx.sh writes the rows and the
// expected predictions as raw little-endian arrays with onnx_rows.py).
//   NODE_PATH=<dir with onnxruntime-node> node onnx_check.js MODEL.onnx ROWS_DIR TOL
// Prints one line per output with its max absolute difference; exits 1 if
// any exceeds TOL, an output is missing, or a value is not finite.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

async function main() {
  const [model, dir, tolArg] = process.argv.slice(2);
  const tol = Number(tolArg);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'rows.json'), 'utf8'));
  const { n, S, D, names } = meta;
  const raw = (f) => {
    const b = fs.readFileSync(path.join(dir, f));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  };
  const feeds = {};
  if (S > 0) feeds.sparse = new ort.Tensor('int64', new BigInt64Array(raw('sparse.bin')), [n, S]);
  if (D > 0) feeds.dense = new ort.Tensor('float32', new Float32Array(raw('dense.bin')), [n, D]);
  const expected = new Float32Array(raw('expected.bin'));
  const session = await ort.InferenceSession.create(model);
  const out = await session.run(feeds);
  let ok = true;
  names.forEach((name, p) => {
    const t = out[name];
    if (!t || t.dims.length !== 2 || t.dims[0] !== n || t.dims[1] !== 1) {
      console.log(`${name}: missing or not [${n}, 1] (${t ? t.dims : 'absent'})`);
      ok = false;
      return;
    }
    let maxdiff = 0;
    for (let i = 0; i < n; i++) {
      const d = Math.abs(t.data[i] - expected[i * names.length + p]);
      if (!(d <= maxdiff)) maxdiff = d; // NaN propagates as a failure
    }
    const good = maxdiff <= tol;
    console.log(`${name}: ${n} rows, max abs diff ${maxdiff.toExponential(3)}${good ? '' : ' > ' + tol}`);
    ok = ok && good;
  });
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.log(`onnxruntime: ${e.message || e}`);
  process.exit(1);
});
