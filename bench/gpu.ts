/**
 * GPU bench: SyncTalk's render graph on onnxruntime-node's execution providers, batch by batch, with the PyTorch
 * reference as the yardstick. Prints ONE table; each measurement is also a JSON line (stdout, and appended to
 * `--results`, so that runs in several processes, e.g. the two calls of the GPU kit, make one table).
 *
 * usage: node --import tsx bench/gpu.ts --bundle DIR [options]        (the GPU kit runs it as one bundled file)
 *   --graph FILE[=LABEL]  render graphs to time (repeatable; default the bundle's render.onnx, labelled from its
 *                         manifest's marching); e.g. the exact graph (SyncTalk's schedule) and a fixed-sample one
 *                         (`export --samples 16`) of the same avatar: both take the same inputs
 *   --providers LIST      default cuda,webgpu; cpu works too (a dry run of the whole bench on a CPU machine)
 *   --batches LIST        default 1,4,8,16; used only when the graph's first dimension is symbolic (else batch 1,
 *                         and the table says so)
 *   --runs N              timed runs per step after one warm-up run (default 10); `--seconds S` ends a step
 *                         sooner (default 20 s; the warm-up run is not counted), and a batch whose run would take
 *                         longer than S (judged from the previous batch) is skipped
 *   --check               compares each provider's batch-1 frame with the CPU provider's (max |difference|), and
 *                         row 0 of every larger batch with the batch-1 frame (batch parity)
 *   --torch DEVICE        also times the PyTorch reference (scripts/gpu-kit/ref-torch.py, python from
 *                         $SYNCTALK_PYTHON or python3) on DEVICE (cuda, cpu) at the bundle's size, `--torch-frames`
 *                         frames (default 5), stopped after `--torch-seconds` (default 100)
 *   --threads N           ORT intra-op threads (default 0: ORT's choice, all cores)
 *   --results FILE        appends the JSON lines there; the table is printed from all of the file's rows
 *   --table               prints the table of `--results` and exits
 *   --quick               1 run per step, 1 torch frame: a smoke test
 *
 * Feeds: the bundle's tracks (pose, eye, anchor of track frames 0, 1, ...) and its PNG frames (images), one track
 * frame per batch row. Timing: wall clock of `session.run` in this thread (inputs copied in, outputs copied back to
 * the host, as the renderer gets them); ms per frame = median run / batch. Placement: ORT's profile of the first
 * run (src/models/ort-placement.ts): nodes that ran on the CPU are counted in the table. Sessions are created and
 * run one at a time in one thread (two threads running WebGPU sessions crash onnxruntime 1.30, #32561).
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { dropProfiles, type Placement, placementFrom } from '../src/models/ort-placement.ts';
import { decodePng } from '../src/synctalk/png.ts';

type Provider = 'cuda' | 'webgpu' | 'cpu';

interface OnnxRow {
  readonly kind: 'onnx';
  readonly graph: string;
  readonly size: string;
  readonly provider: Provider;
  readonly batch: number;
  readonly msPerFrame: number;
  readonly fps: number;
  readonly medianRunMs: number;
  readonly firstRunMs: number;
  readonly createMs: number;
  readonly runs: number;
  readonly placement?: Placement;
  /** Max |difference| of the batch-1 frame from the CPU provider's (--check, GPU providers). */
  readonly maxDiffVsCpu?: number;
  /** Max |difference| of row 0 from the batch-1 frame on the same provider (--check, batch > 1). */
  readonly maxDiffVsBatch1?: number;
  readonly note?: string;
}

interface TorchRow {
  readonly kind: 'torch';
  readonly graph: string;
  readonly size: string;
  readonly provider: string;
  readonly batch: 1;
  readonly msPerFrame: number;
  readonly fps: number;
  readonly firstRunMs: number;
  readonly runs: number;
  readonly note: string;
}

interface ErrorRow {
  readonly kind: 'error';
  readonly graph: string;
  readonly provider: string;
  readonly batch?: number;
  readonly error: string;
}

interface SkippedRow {
  readonly kind: 'skipped';
  readonly graph: string;
  readonly provider: string;
  readonly batch: number;
  readonly reason: string;
}

type Row = OnnxRow | TorchRow | ErrorRow | SkippedRow;

interface Manifest {
  readonly width: number;
  readonly height: number;
  readonly mode: string;
  readonly frames: number;
  readonly samples?: number;
  readonly rays?: number;
  /** 'synctalk' (SyncTalk's marching schedule, the exact graph) or 'fixed' (`samples` per ray); absent before it. */
  readonly marching?: string;
}

const { values: opt } = parseArgs({
  options: {
    bundle: { type: 'string' },
    graph: { type: 'string', multiple: true },
    providers: { type: 'string', default: 'cuda,webgpu' },
    batches: { type: 'string', default: '1,4,8,16' },
    runs: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '20' },
    check: { type: 'boolean', default: false },
    torch: { type: 'string' },
    'torch-frames': { type: 'string', default: '5' },
    'torch-seconds': { type: 'string', default: '100' },
    threads: { type: 'string', default: '0' },
    results: { type: 'string' },
    table: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
  },
});

const fail = (problem: string): never => {
  console.error(`bench/gpu: ${problem}`);
  process.exit(2);
};

const list = (s: string): string[] => s.split(',').map((x) => x.trim()).filter(Boolean);
const positive = (name: string, s: string): number => {
  const n = Number(s);
  return Number.isInteger(n) && n > 0 ? n : fail(`--${name} must be a positive integer; is ${s}`);
};
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r2 = (x: number): number => Math.round(x * 100) / 100;
/** The first line of an ORT error, without the source location of a failed check. */
const short = (e: unknown): string => {
  const line = (e instanceof Error ? e.message : String(e)).split('\n')[0];
  const check = line.indexOf(' was false. ');
  return (check >= 0 ? line.slice(check + ' was false. '.length) : line).trim();
};

const rowsOfThisRun: Row[] = [];
function emit(row: Row): void {
  rowsOfThisRun.push(row);
  const line = JSON.stringify(row);
  console.log(line);
  if (opt.results) appendFileSync(opt.results, `${line}\n`);
}

/** The table of `rows`: one line per graph, provider and batch. */
function table(rows: readonly Row[]): string {
  const head = ['graph', 'provider', 'batch', 'ms/frame', 'frames/s', 'first run ms', 'max |diff| vs cpu', 'vs batch 1', 'nodes on cpu', 'note'];
  const fmt = (x: number | undefined, digits = 2): string => (x === undefined ? '' : x === 0 ? '0' : x < 0.01 ? x.toExponential(1) : x.toFixed(digits));
  const body = rows.map((r) => {
    if (r.kind === 'error') return [r.graph, r.provider, String(r.batch ?? ''), '', '', '', '', '', '', `FAILED: ${r.error}`];
    if (r.kind === 'skipped') return [r.graph, r.provider, String(r.batch), '', '', '', '', '', '', `skipped: ${r.reason}`];
    if (r.kind === 'torch') return [r.graph, r.provider, '1', fmt(r.msPerFrame), fmt(r.fps, 1), fmt(r.firstRunMs, 0), '', '', '', r.note];
    const cpuNodes = r.provider === 'cpu' || !r.placement ? '' : `${r.placement.nodes.cpu ?? 0}${r.placement.cpuOps.length ? ` (${r.placement.cpuOps.join(' ')})` : ''}`;
    return [r.graph, r.provider, String(r.batch), fmt(r.msPerFrame), fmt(r.fps, 1), fmt(r.firstRunMs, 0), fmt(r.maxDiffVsCpu), fmt(r.maxDiffVsBatch1), cpuNodes, r.note ?? ''];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

function printTable(): void {
  const rows: Row[] = opt.results && existsSync(opt.results)
    ? readFileSync(opt.results, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row)
    : rowsOfThisRun;
  console.log(`\n${table(rows)}`);
}

if (opt.table) {
  if (!opt.results) fail('--table needs --results FILE');
  printTable();
  process.exit(0);
}

const dir = opt.bundle ?? fail('--bundle DIR is required (an exported SyncTalk bundle)');
if (!existsSync(join(dir, 'manifest.json'))) fail(`${dir}: no manifest.json (not a SyncTalk bundle)`);
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
const tracks = JSON.parse(readFileSync(join(dir, 'tracks.json'), 'utf8')) as Record<string, number[][] | undefined>;
const providers = list(opt.providers).map((p) => (['cuda', 'webgpu', 'cpu'].includes(p) ? (p as Provider) : fail(`unknown provider ${p} (cuda, webgpu, cpu)`)));
const batches = list(opt.batches).map((b) => positive('batches', b));
const runs = opt.quick ? 1 : positive('runs', opt.runs);
const seconds = Number(opt.seconds) > 0 ? Number(opt.seconds) : fail(`--seconds must be positive; is ${opt.seconds}`);
const threads = Number(opt.threads);
const size = `${manifest.width}x${manifest.height}`;
const marching = manifest.marching === 'synctalk' ? 'exact: SyncTalk schedule' : manifest.samples ? `fixed: ${manifest.samples} samples/ray` : '';
const bundleLabel = `${size} ${manifest.mode}`;
const graphs = (opt.graph ?? [join(dir, 'render.onnx')]).map((g) => {
  const [file, label] = g.split('=');
  if (!existsSync(file)) fail(`${file}: no such graph file`);
  return { file, label: `${label ?? `${basename(file)}${marching ? `, ${marching}` : ''}`} (${bundleLabel})` };
});

/** Image inputs of track frame i, decoded from the bundle's PNGs, by input name. */
const imageCache = new Map<string, Uint8Array>();
function image(name: string, i: number): Uint8Array {
  const path = join(dir, name, `${String(i).padStart(6, '0')}.png`);
  let data = imageCache.get(path);
  if (!data) {
    data = decodePng(path, readFileSync(path)).data;
    imageCache.set(path, data);
  }
  return data;
}

/** Feeds of `batch` rows (row k: track frame k mod frames); symbolic dimensions are the batch. */
function feeds(session: ort.InferenceSession, batch: number): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const m of session.inputMetadata) {
    if (!m.isTensor) fail(`${m.name}: not a tensor input`);
    const meta = m as ort.InferenceSession.TensorValueMetadata;
    const dims = meta.shape.map((d) => (typeof d === 'number' ? d : batch));
    const rows = typeof meta.shape[0] === 'number' ? 1 : batch;
    const per = dims.reduce((a, b) => a * b, 1) / rows;
    const track = ({ pose: tracks.poses, eye: tracks.eyes, anchor: tracks.anchors } as Record<string, number[][] | undefined>)[m.name];
    if (meta.type === 'uint8') {
      const data = new Uint8Array(per * rows);
      for (let k = 0; k < rows; k++) data.set(image(m.name, k % manifest.frames), k * per);
      out[m.name] = new ort.Tensor('uint8', data, dims);
    } else if (track) {
      const data = new Float32Array(per * rows);
      for (let k = 0; k < rows; k++) data.set(track[k % track.length].slice(0, per), k * per);
      out[m.name] = new ort.Tensor('float32', data, dims);
    } else {
      // enc_a: a fixed audio code (what the audio graphs would give; the render cost does not depend on it)
      out[m.name] = new ort.Tensor('float32', Float32Array.from({ length: per * rows }, (_, k) => 0.5 * Math.sin(k % per)), dims);
    }
  }
  return out;
}

const maxDiff = (a: ort.Tensor['data'], b: ort.Tensor['data'], n = Math.min(a.length, b.length)): number => {
  let m = 0;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(Number(a[i]) - Number(b[i]));
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
};

/** All outputs of a run, as one list of arrays (compared element by element). */
const outputsOf = (r: ort.InferenceSession.ReturnType): Array<ort.Tensor['data']> => Object.values(r).map((t) => t.data);

async function create(file: string, provider: Provider, profile: string | null): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(file, {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
    ...(profile ? { enableProfiling: true, profileFilePrefix: join(tmpdir(), profile) } : {}),
  });
}

async function measureGraph(file: string, label: string): Promise<void> {
  let cpuFrame: Array<ort.Tensor['data']> | null = null;
  if (opt.check && providers.some((p) => p !== 'cpu')) {
    try {
      const cpu = await create(file, 'cpu', null);
      cpuFrame = outputsOf(await cpu.run(feeds(cpu, 1)));
      await cpu.release();
    } catch (e) {
      emit({ kind: 'error', graph: label, provider: 'cpu', batch: 1, error: `cpu reference frame: ${short(e)}` });
    }
  }
  for (const provider of providers) {
    const profile = provider === 'cpu' ? null : `synctalk-gpu-bench-${process.pid}-${provider}`;
    let session: ort.InferenceSession;
    const t0 = performance.now();
    try {
      session = await create(file, provider, profile);
    } catch (e) {
      dropProfiles(profile);
      emit({ kind: 'error', graph: label, provider, error: short(e) });
      continue;
    }
    const createMs = performance.now() - t0;
    const batchable = session.inputMetadata.every((m) => m.isTensor && typeof m.shape[0] === 'string');
    let placement: Placement | undefined;
    let batch1: Array<ort.Tensor['data']> | null = null;
    let last: { batch: number; runMs: number } | null = null;
    for (const batch of batchable ? batches : [1]) {
      const expected = last ? (last.runMs * batch) / last.batch : 0;
      if (expected > seconds * 1000) {
        emit({ kind: 'skipped', graph: label, provider, batch, reason: `about ${(expected / 1000).toFixed(1)} s per run, over --seconds ${seconds}` });
        continue;
      }
      try {
        const input = feeds(session, batch);
        let t = performance.now();
        const first = outputsOf(await session.run(input));
        const firstRunMs = performance.now() - t;
        if (profile !== null && !placement) {
          session.endProfiling();
          placement = placementFrom(profile);
        }
        const times: number[] = [];
        const until = performance.now() + seconds * 1000;
        while (times.length < runs && (times.length === 0 || performance.now() < until)) {
          t = performance.now();
          await session.run(input);
          times.push(performance.now() - t);
        }
        const run = median(times);
        last = { batch, runMs: run };
        if (batch === 1) batch1 = first;
        const vsCpu = batch === 1 && cpuFrame && provider !== 'cpu' ? Math.max(...cpuFrame.map((c, i) => maxDiff(first[i], c))) : undefined;
        const vsBatch1 = opt.check && batch > 1 && batch1 ? Math.max(...batch1.map((b, i) => maxDiff(first[i], b, b.length))) : undefined;
        const note = batchable ? undefined : "graph's first dimension is fixed: batch 1 only";
        emit({
          kind: 'onnx',
          graph: label,
          size,
          provider,
          batch,
          msPerFrame: r2(run / batch),
          fps: r2((1000 * batch) / run),
          medianRunMs: r2(run),
          firstRunMs: r2(firstRunMs),
          createMs: r2(createMs),
          runs: times.length,
          ...(placement ? { placement } : {}),
          ...(vsCpu !== undefined ? { maxDiffVsCpu: vsCpu } : {}),
          ...(vsBatch1 !== undefined ? { maxDiffVsBatch1: vsBatch1 } : {}),
          ...(note ? { note } : {}),
        });
      } catch (e) {
        emit({ kind: 'error', graph: label, provider, batch, error: short(e) });
      }
    }
    await session.release();
    dropProfiles(profile);
  }
}

function measureTorch(device: string): void {
  const python = process.env.SYNCTALK_PYTHON ?? 'python3';
  const frames = opt.quick ? 1 : positive('torch-frames', opt['torch-frames']);
  const script = resolve('scripts', 'gpu-kit', 'ref-torch.py');
  const args = [script, '--size', String(manifest.width), '--device', device, '--frames', String(frames), '--mode', manifest.mode];
  const limit = positive('torch-seconds', opt['torch-seconds']);
  const r = spawnSync(python, args, { encoding: 'utf8', timeout: limit * 1000, killSignal: 'SIGKILL', maxBuffer: 16 << 20 });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    const o = JSON.parse(last) as { medianMs: number; firstMs: number; frames: number; torch: string; threads: number };
    emit({
      kind: 'torch',
      graph: `PyTorch reference (${size} ${manifest.mode})`,
      size,
      provider: `torch ${device}`,
      batch: 1,
      msPerFrame: r2(o.medianMs),
      fps: r2(1000 / o.medianMs),
      firstRunMs: r2(o.firstMs),
      runs: o.frames,
      note: `torch ${o.torch}${device === 'cpu' ? `, ${o.threads} threads` : ''}`,
    });
  } catch {
    const why = r.signal === 'SIGKILL' ? `over --torch-seconds ${limit}` : (r.error?.message ?? (r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-1)[0]);
    emit({ kind: 'error', graph: 'PyTorch reference', provider: `torch ${device}`, error: why });
  }
}

console.error(`bench/gpu: ${bundleLabel}, ${graphs.length} graph(s), providers ${providers.join(', ')}, batches ${batches.join(', ')}, ${runs} runs/step, ${cpus().length} cores`);
for (const g of graphs) await measureGraph(g.file, g.label);
if (opt.torch) measureTorch(opt.torch);
printTable();
