// tfmodelkit's bridge to TF.js (the pure-JavaScript @tensorflow/tfjs, CPU backend).
//
//   node tfmodelkit_tfjs.js REQUEST.json RESPONSE.json
//
// REQUEST: {"op": "load" | "describe" | "run" | "make", ...}. Results go to RESPONSE (never stdout:
// TF.js prints a banner there). Models are loaded by TF.js's own loaders (tf.loadLayersModel,
// tf.loadGraphModel) through its HTTP handler, whose fetch is served from local files: the
// manifest, shard concatenation and dequantization are TF.js's code, not ours.
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const tf = require('@tensorflow/tfjs');

const BASE = 'http://tfmodelkit.invalid/';

function fileFetch(root) {
  return async (url) => {
    const rel = decodeURIComponent(String(url).slice(BASE.length).split('?')[0]);
    const file = path.resolve(root, rel);
    if (!file.startsWith(path.resolve(root) + path.sep)) {
      return new Response('outside the model folder', {status: 403});
    }
    try {
      return new Response(fs.readFileSync(file), {status: 200});
    } catch (e) {
      return new Response(String(e), {status: 404, statusText: 'Not Found'});
    }
  };
}

async function load(modelJson) {
  const root = path.dirname(path.resolve(modelJson));
  const url = BASE + encodeURIComponent(path.basename(modelJson));
  const handler = tf.io.http(url, {fetchFunc: fileFetch(root)});
  const text = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  const start = Date.now();
  if (text.format === 'graph-model' || (text.modelTopology && text.modelTopology.node)) {
    const model = await tf.loadGraphModel(handler);
    return {kind: 'graph', model, ms: Date.now() - start};
  }
  const model = await tf.loadLayersModel(handler);
  return {kind: 'layers', model, ms: Date.now() - start};
}

function encode(t) {
  const data = t.dataSync();
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return {dtype: t.dtype, shape: t.shape, b64: buf.toString('base64')};
}

async function sha256(t) {
  const hash = crypto.createHash('sha256');
  if (t.dtype === 'string') {
    // Strings hash as the weights manifest stores them: per element, a uint32 LE length and the
    // bytes (t.bytes(), not dataSync(), which decodes them as UTF-8).
    for (const bytes of await t.bytes()) {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      hash.update(length).update(Buffer.from(bytes));
    }
    return hash.digest('hex');
  }
  const data = t.dataSync();
  return hash.update(Buffer.from(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
}

function decode(spec) {
  const raw = Buffer.from(spec.b64, 'base64');
  const bytes = new Uint8Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const arrays = {float32: Float32Array, int32: Int32Array, bool: Uint8Array};
  const Kind = arrays[spec.dtype];
  if (!Kind) throw new Error(`input dtype ${spec.dtype} is not one TF.js takes (float32, int32, bool)`);
  const values = new Kind(bytes.buffer);
  // tf.tensor(values, []) infers [1] from the array: a scalar must be made as one.
  if (spec.shape.length === 0) return tf.scalar(spec.dtype === 'bool' ? Boolean(values[0]) : values[0], spec.dtype);
  return tf.tensor(values, spec.shape, spec.dtype);
}

function ioSpecs(loaded) {
  const m = loaded.model;
  const one = (t) => ({name: t.name, dtype: t.dtype, shape: t.shape});
  if (loaded.kind === 'graph') {
    return {inputs: m.inputs.map(one), outputs: m.outputs.map(one)};
  }
  return {
    inputs: m.inputs.map(one),
    outputs: m.outputs.map(one),
    input_names: m.inputs.map((t) => t.sourceLayer.name),
    output_names: m.outputs.map((t) => t.sourceLayer.name),
  };
}

async function describe(req) {
  const loaded = await load(req.model);
  const weights = [];
  if (loaded.kind === 'layers') {
    for (const w of loaded.model.weights) {
      const v = w.read();
      weights.push({name: w.originalName, dtype: v.dtype, shape: v.shape, sha256: await sha256(v)});
    }
  } else {
    for (const [name, ts] of Object.entries(loaded.model.weights)) {
      const v = ts[0];
      weights.push({name, dtype: v.dtype, shape: v.shape, sha256: await sha256(v)});
    }
  }
  const out = {kind: loaded.kind, load_ms: loaded.ms, versions: tf.version, weights, ...ioSpecs(loaded)};
  if (loaded.kind === 'layers') {
    out.layers = loaded.model.layers.map((l) => ({name: l.name, class_name: l.getClassName()}));
  }
  return out;
}

async function run(req) {
  const loaded = await load(req.model);
  const m = loaded.model;
  const start = Date.now();
  let result;
  if (loaded.kind === 'layers') {
    const xs = req.order.map((name) => decode(req.inputs[name]));
    result = m.predict(xs.length === 1 ? xs[0] : xs);
  } else {
    const feed = {};
    for (const [name, spec] of Object.entries(req.inputs)) feed[name] = decode(spec);
    result = await m.executeAsync(feed, req.outputs && req.outputs.length ? req.outputs : undefined);
  }
  const list = Array.isArray(result) ? result : result instanceof tf.Tensor ? [result] : Object.values(result);
  return {load_ms: loaded.ms, run_ms: Date.now() - start, outputs: list.map(encode), model: ioSpecs(loaded)};
}

async function main() {
  const [reqFile, resFile] = process.argv.slice(2);
  if (!reqFile || !resFile) {
    process.stderr.write('usage: node tfmodelkit_tfjs.js REQUEST.json RESPONSE.json\n');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  const req = JSON.parse(fs.readFileSync(reqFile, 'utf8'));
  let res;
  try {
    if (req.op === 'load') res = {load_ms: (await load(req.model)).ms};
    else if (req.op === 'describe') res = await describe(req);
    else if (req.op === 'run') res = await run(req);
    else if (req.op === 'make') res = await require('./make_fixtures.js').make(tf, req);
    else throw new Error(`unknown op ${req.op}`);
    res.ok = true;
  } catch (e) {
    res = {ok: false, error: String((e && e.message) || e).split('\n')[0]};
  }
  fs.writeFileSync(resFile, JSON.stringify(res));
}

main();
