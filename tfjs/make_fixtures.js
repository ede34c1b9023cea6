// The TF.js test models of tfmodelkit's fixtures, made with TF.js itself (called by
// fixtures/models/make_tfjs.py through tfmodelkit_tfjs.js {"op": "make", "out": FOLDER}).
//
// Layers models are built with tf.layers and saved through TF.js's own save path
// (model.save with a handler that receives its artifacts: topology, weight specs and bytes).
// TF.js in JavaScript cannot write graph models or quantize (its Python converter does), so
// the graph models' GraphDef JSON and the quantized manifests are written here from the
// format, and every model is then loaded back by tf.loadLayersModel / tf.loadGraphModel.
'use strict';
const fs = require('fs');
const path = require('path');

// float32 -> IEEE half, round to nearest even.
function toHalf(f) {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setFloat32(0, f);
  const x = buf.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  let exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half += 1;
    return sign | half;
  }
  let half = (exp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half += 1;
  return sign | half;
}

// One weight's stored bytes and manifest entry, quantized as TF.js's converter would.
function encodeWeight(name, values, shape, quant) {
  const entry = {name, shape, dtype: 'float32'};
  if (!quant) return {entry, bytes: Buffer.from(Float32Array.from(values).buffer)};
  if (quant === 'float16') {
    const out = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = toHalf(values[i]);
    entry.quantization = {dtype: 'float16', original_dtype: 'float32'};
    return {entry, bytes: Buffer.from(out.buffer)};
  }
  const levels = quant === 'uint8' ? 255 : 65535;
  let min = Math.min(...values);
  let max = Math.max(...values);
  const scale = max > min ? (max - min) / levels : 1.0;
  const Kind = quant === 'uint8' ? Uint8Array : Uint16Array;
  const out = new Kind(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.round((values[i] - min) / scale);
  entry.quantization = {dtype: quant, min, scale, original_dtype: 'float32'};
  return {entry, bytes: Buffer.from(out.buffer)};
}

function writeModel(folder, modelJson, encoded, shardSize) {
  fs.mkdirSync(folder, {recursive: true});
  const all = Buffer.concat(encoded.map((e) => e.bytes));
  const count = Math.max(1, Math.ceil(all.length / shardSize));
  const paths = [];
  for (let i = 0; i < count; i++) {
    const name = `group1-shard${i + 1}of${count}.bin`;
    fs.writeFileSync(path.join(folder, name), all.subarray(i * shardSize, (i + 1) * shardSize));
    paths.push(name);
  }
  modelJson.weightsManifest = [{paths, weights: encoded.map((e) => e.entry)}];
  fs.writeFileSync(path.join(folder, 'model.json'), JSON.stringify(modelJson));
}

async function saveLayers(tf, model, folder, quant, shardSize) {
  let artifacts;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  }));
  const data = Buffer.from(artifacts.weightData);
  const encoded = [];
  let offset = 0;
  for (const spec of artifacts.weightSpecs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(data.buffer.slice(data.byteOffset + offset, data.byteOffset + offset + 4 * n));
    offset += 4 * n;
    encoded.push(encodeWeight(spec.name, Array.from(values), spec.shape, quant));
  }
  const modelJson = {
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    modelTopology: artifacts.modelTopology,
  };
  writeModel(folder, modelJson, encoded, shardSize);
}

function seeded(tf, seed) {
  return tf.initializers.glorotUniform({seed});
}

function sequential(tf) {
  const m = tf.sequential({name: 'mlp'});
  m.add(tf.layers.dense({units: 5, inputShape: [4], activation: 'relu', name: 'hidden', kernelInitializer: seeded(tf, 1), biasInitializer: 'ones'}));
  m.add(tf.layers.dense({units: 3, activation: 'softmax', name: 'probs', kernelInitializer: seeded(tf, 2)}));
  return m;
}

function functional(tf) {
  const a = tf.input({shape: [3], name: 'a'});
  const b = tf.input({shape: [6], name: 'b'});
  const img = tf.layers.reshape({targetShape: [3, 2, 1], name: 'as_image'}).apply(b);
  const conv = tf.layers.conv2d({filters: 2, kernelSize: 2, padding: 'same', name: 'conv', kernelInitializer: seeded(tf, 3)}).apply(img);
  const flat = tf.layers.flatten({name: 'flat'}).apply(conv);
  const joined = tf.layers.concatenate({name: 'join'}).apply([a, flat]);
  const h = tf.layers.dense({units: 4, activation: 'tanh', name: 'mix', kernelInitializer: seeded(tf, 4)}).apply(joined);
  const out = tf.layers.dense({units: 2, name: 'out', kernelInitializer: seeded(tf, 5)}).apply(h);
  const aux = tf.layers.batchNormalization({name: 'norm'}).apply(h);
  return tf.model({inputs: [a, b], outputs: [out, aux], name: 'two_in_two_out'});
}

const DT_FLOAT = {type: 'DT_FLOAT'};

function shapeAttr(dims) {
  return {shape: {dim: dims.map((d) => ({size: String(d)}))}};
}

// y = softmax(relu(x @ w1 + b1) @ w2 + b2), as a GraphDef in JSON the way the converter writes it.
function graphMlp(quant) {
  const rand = (() => { let s = 7; return () => { s = (s * 16807) % 2147483647; return s / 2147483647 - 0.5; }; })();
  const fill = (n) => Array.from({length: n}, () => rand());
  const weights = [
    ['dense/w1', [4, 8], fill(32)], ['dense/b1', [8], fill(8)],
    ['dense_1/w2', [8, 3], fill(24)], ['dense_1/b2', [3], fill(3)],
  ];
  const konst = (name, shape) => ({name, op: 'Const', attr: {dtype: DT_FLOAT, value: {tensor: {dtype: 'DT_FLOAT', tensorShape: shapeAttr(shape).shape}}}});
  const nodes = [
    {name: 'x', op: 'Placeholder', attr: {dtype: DT_FLOAT, shape: shapeAttr([-1, 4])}},
    ...weights.map(([n, s]) => konst(n, s)),
    {name: 'dense/MatMul', op: 'MatMul', input: ['x', 'dense/w1'], attr: {T: DT_FLOAT, transpose_a: {b: false}, transpose_b: {b: false}}},
    {name: 'dense/BiasAdd', op: 'BiasAdd', input: ['dense/MatMul', 'dense/b1'], attr: {T: DT_FLOAT, data_format: {s: Buffer.from('NHWC').toString('base64')}}},
    {name: 'dense/Relu', op: 'Relu', input: ['dense/BiasAdd'], attr: {T: DT_FLOAT}},
    {name: 'dense_1/MatMul', op: 'MatMul', input: ['dense/Relu', 'dense_1/w2'], attr: {T: DT_FLOAT, transpose_a: {b: false}, transpose_b: {b: false}}},
    {name: 'dense_1/BiasAdd', op: 'BiasAdd', input: ['dense_1/MatMul', 'dense_1/b2'], attr: {T: DT_FLOAT}},
    {name: 'probs', op: 'Softmax', input: ['dense_1/BiasAdd'], attr: {T: DT_FLOAT}},
    {name: 'Identity', op: 'Identity', input: ['probs'], attr: {T: DT_FLOAT}},
  ];
  const tensorInfo = (name, dims) => ({name, dtype: 'DT_FLOAT', tensorShape: shapeAttr(dims).shape});
  const modelJson = {
    format: 'graph-model',
    generatedBy: '2.21.0',
    convertedBy: 'tfmodelkit fixtures (TF.js format, loaded back by tf.loadGraphModel)',
    modelTopology: {node: nodes, library: {}, versions: {producer: 1882}},
    signature: {inputs: {'x:0': tensorInfo('x:0', [-1, 4])}, outputs: {'Identity:0': tensorInfo('Identity:0', [-1, 3])}},
    userDefinedMetadata: {purpose: 'tfmodelkit test model'},
  };
  const encoded = weights.map(([n, s, v]) => encodeWeight(n, v, s, quant));
  return {modelJson, encoded};
}

async function make(tf, req) {
  const out = req.out;
  const made = [];
  await saveLayers(tf, sequential(tf), path.join(out, 'layers_mlp'), null, 64);
  made.push('layers_mlp');
  await saveLayers(tf, functional(tf), path.join(out, 'layers_two_io_uint8'), 'uint8', 4 << 20);
  made.push('layers_two_io_uint8');
  for (const [name, quant] of [['graph_mlp', null], ['graph_mlp_float16', 'float16'], ['graph_mlp_uint16', 'uint16']]) {
    const {modelJson, encoded} = graphMlp(quant);
    writeModel(path.join(out, name), modelJson, encoded, quant ? 4 << 20 : 256);
    made.push(name);
  }
  return {made};
}

module.exports = {make};
