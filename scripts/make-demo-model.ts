/**
 * Builds models/demo-face.onnx, the demo avatar (see src/models/demo-face.ts for the contract and
 * the drawing), in plain JS with onnx-proto: no Python, no weights, only elementwise ops on small
 * constant pixel-coordinate rows and columns, broadcast to [N, 256, 256]. Opset 17, IR 8.
 * The output is deterministic: the same script writes the same bytes.
 *
 * Usage: node --import tsx scripts/make-demo-model.ts [out]   (default models/demo-face.onnx)
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { DEMO_FACE, DEMO_FACE_MODEL_PATH } from '../src/models/demo-face.ts';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const UINT8 = onnx.TensorProto.DataType.UINT8;

/** Accumulates nodes and initializers; `op` returns the name of the node's single output. */
class GraphBuilder {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private count = 0;

  /** A float32 constant of the given dims ([] = scalar). */
  floats(name: string, dims: number[], values: ArrayLike<number>): string {
    const data = Float32Array.from(values);
    this.initializers.push(
      onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) }),
    );
    return name;
  }

  ints(name: string, values: number[]): string {
    const data = BigInt64Array.from(values.map(BigInt));
    this.initializers.push(
      onnx.TensorProto.create({ name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) }),
    );
    return name;
  }

  scalar(value: number): string {
    return this.floats(`c${this.initializers.length}`, [], [value]);
  }

  op(opType: string, inputs: string[], attributes: InstanceType<typeof onnx.AttributeProto>[] = [], name?: string): string {
    const output = name ?? `t${this.count++}`;
    this.nodes.push(onnx.NodeProto.create({ opType, input: inputs, output: [output], name: output, attribute: attributes }));
    return output;
  }
}

const intAttr = (name: string, i: number) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
const intsAttr = (name: string, ints: number[]) =>
  onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints });

const tensorInfo = (name: string, elemType: number, dims: Array<number | string>) =>
  onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });

/** The encoded model. */
export function buildDemoFaceModel(): Uint8Array {
  const { size, samplesPerFrame, colors, head, eyes, blink, bob, mouth, level } = DEMO_FACE;
  const g = new GraphBuilder();
  const centres = Array.from({ length: size }, (_, i) => i + 0.5);
  const row = (name: string, f: (x: number) => number) => g.floats(name, [1, 1, size], centres.map(f));
  const column = g.floats('y', [1, size, 1], centres);
  const sq = (v: number) => v * v;

  // opening o = clamp((10 log10(mean(x²) + eps) - floorDb) / rangeDb, 0, 1), shaped [N, 1, 1]
  const power = g.op('ReduceMean', [g.op('Mul', ['audio', 'audio'])], [intsAttr('axes', [1]), intAttr('keepdims', 0)]);
  const db = g.op('Mul', [g.op('Log', [g.op('Add', [power, g.scalar(level.epsilon)])]), g.scalar(10 / Math.LN10)]);
  const scaled = g.op('Mul', [g.op('Add', [db, g.scalar(-level.floorDb)]), g.scalar(1 / level.rangeDb)]);
  const shape3 = g.ints('shape_n11', [-1, 1, 1]);
  const opening = g.op('Reshape', [g.op('Clip', [scaled, g.scalar(0), g.scalar(1)]), shape3], [], 'opening');
  const phase = g.op('Reshape', ['phase', shape3]);

  // the face's rows, bobbing: yy = y - amplitude sin(2π phase / period), [N, 256, 1]
  const offset = g.op('Mul', [g.op('Sin', [g.op('Mul', [phase, g.scalar((2 * Math.PI) / bob.period)])]), g.scalar(bob.amplitude)]);
  const yy = g.op('Sub', [column, offset]);
  const inside = (sum: string) => g.op('Cast', [g.op('Less', [sum, g.scalar(1)])], [intAttr('to', FLOAT)]);
  const norm2 = (centre: number, radius: string) => {
    const n = g.op('Div', [g.op('Sub', [yy, g.scalar(centre)]), radius]);
    return g.op('Mul', [n, n]);
  };

  const headX = row('head_x2', (x) => sq((x - head.cx) / head.rx));
  const headMask = inside(g.op('Add', [headX, norm2(head.cy, g.scalar(head.ry))]));

  const eyeX = row('eye_x2', (x) => sq((Math.abs(x - eyes.cx) - eyes.dx) / eyes.rx));
  const closed = g.op('Less', [g.op('Mod', [phase, g.scalar(blink.period)], [intAttr('fmod', 1)]), g.scalar(blink.frames)]);
  const eyeRy = g.op('Where', [closed, g.scalar(eyes.ryClosed), g.scalar(eyes.ryOpen)]);
  const eyeMask = inside(g.op('Add', [eyeX, norm2(eyes.cy, eyeRy)]));

  // mouth: vertical coverage clamp(h(x) - |yy - cy| + 0.5, 0, 1) with h(x) = (height / 2) sqrt(1 - ((x - cx) / rx)²)
  const profile = row('mouth_profile', (x) => Math.sqrt(Math.max(0, 1 - sq((x - mouth.cx) / mouth.rx))));
  const columns = row('mouth_columns', (x) => (Math.abs(x - mouth.cx) < mouth.rx ? 1 : 0));
  const halfHeight = g.op('Add', [g.op('Mul', [opening, g.scalar(mouth.gain / 2)]), g.scalar(mouth.baseHeight / 2)]);
  const reach = g.op('Mul', [halfHeight, profile]);
  const distance = g.op('Abs', [g.op('Sub', [yy, g.scalar(mouth.cy)])]);
  const edge = g.op('Add', [g.op('Sub', [reach, distance]), g.scalar(0.5)]);
  const mouthMask = g.op('Mul', [g.op('Clip', [edge, g.scalar(0), g.scalar(1)]), columns]);

  // colour: eyes and mouth lie inside the head, so the layers add up: bg + head (skin - bg) + ...
  const rgba = (name: string, c: readonly number[]) => g.floats(name, [4], c);
  const minus = (a: readonly number[], b: readonly number[]) => a.map((v, i) => v - b[i]);
  const channelAxis = g.ints('axis_3', [3]);
  const layer = (mask: string, name: string, delta: number[]) =>
    g.op('Mul', [g.op('Unsqueeze', [mask, channelAxis]), rgba(name, delta)]);
  let image = g.op('Add', [rgba('background', colors.background), layer(headMask, 'skin_delta', minus(colors.skin, colors.background))]);
  image = g.op('Add', [image, layer(eyeMask, 'eye_delta', minus(colors.eye, colors.skin))]);
  image = g.op('Add', [image, layer(mouthMask, 'mouth_delta', minus(colors.mouth, colors.skin))]);
  const rounded = g.op('Clip', [g.op('Add', [image, g.scalar(0.5)]), g.scalar(0), g.scalar(255)]);
  g.op('Cast', [rounded], [intAttr('to', UINT8)], 'frame');

  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'synctalk-live scripts/make-demo-model.ts',
    docString: 'Demo avatar: a face whose mouth height is 2 + 60 * clamp((dBFS + 60) / 50, 0, 1) px. See src/models/demo-face.ts.',
    graph: {
      name: 'demo_face',
      node: g.nodes,
      initializer: g.initializers,
      input: [tensorInfo('audio', FLOAT, ['N', samplesPerFrame]), tensorInfo('phase', FLOAT, ['N'])],
      output: [tensorInfo('frame', UINT8, ['N', size, size, 4])],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = process.argv[2] ?? DEMO_FACE_MODEL_PATH;
  const bytes = buildDemoFaceModel();
  writeFileSync(out, bytes);
  console.log(`${out}: ${bytes.length} bytes`);
}
