// ONNX Runtime side of the inference benchmark (launch/bench-infer.sh): the
// same rows and batch sizes as bench_infer, sequential session.run calls on
// one session with one intra-op thread.
//   NODE_PATH=<dir with onnxruntime-node> node bench_onnx.js MODEL.onnx ROWS_DIR [SECONDS]
// One line per batch size:
//   ort threads=1 batch=B rows_per_s=R p50_us=X p99_us=Y calls=C
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

async function main() {
  const [model, dir, secArg] = process.argv.slice(2);
  const seconds = Number(secArg || 2);
  const { n, S, D } = JSON.parse(fs.readFileSync(path.join(dir, 'rows.json'), 'utf8'));
  const raw = (f) => {
    const b = fs.readFileSync(path.join(dir, f));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  };
  const sparse = new BigInt64Array(raw('sparse.bin'));
  const dense = new Float32Array(raw('dense.bin'));
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  for (const batch of [1, 16, 256]) {
    // the batches' tensors are made before timing, as a server holds its inputs
    const feeds = [];
    for (let r = 0; r + batch <= n && feeds.length < 512; r += batch) {
      const f = {};
      if (S > 0) f.sparse = new ort.Tensor('int64', sparse.subarray(r * S, (r + batch) * S), [batch, S]);
      if (D > 0) f.dense = new ort.Tensor('float32', dense.subarray(r * D, (r + batch) * D), [batch, D]);
      feeds.push(f);
    }
    for (let i = 0; i < 20; i++) await session.run(feeds[i % feeds.length]); // warm up
    const lat = [];
    const t0 = process.hrtime.bigint();
    const end = t0 + BigInt(Math.round(seconds * 1e9));
    for (let i = 0; ; i++) {
      const a = process.hrtime.bigint();
      await session.run(feeds[i % feeds.length]);
      const b = process.hrtime.bigint();
      lat.push(Number(b - a) / 1e3);
      if (b > end) break;
    }
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    lat.sort((x, y) => x - y);
    const p = (q) => lat[Math.floor(q * (lat.length - 1))];
    console.log(`ort threads=1 batch=${batch} rows_per_s=${Math.round((lat.length * batch) / wall)} ` +
      `p50_us=${p(0.5).toFixed(1)} p99_us=${p(0.99).toFixed(1)} calls=${lat.length}`);
  }
}

main().catch((e) => {
  console.error(`bench_onnx: ${e.message || e}`);
  process.exit(1);
});
