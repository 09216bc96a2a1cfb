/**
 * Where onnxruntime really ran a session's nodes, read from ORT's profiler: a session created with
 * `enableProfiling` and `profileFilePrefix: join(tmpdir(), prefix)` writes, when `endProfiling()` is called after a
 * run, a JSON trace whose per-node kernel events name the execution provider that ran each node. ORT places the
 * nodes a GPU provider has no kernel for on the CPU by itself (and inserts Memcpy nodes around them); its verbose
 * log says so too, but only on the process's stderr, so this is how a running process learns it.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where a model's nodes ran on its first run. */
export interface Placement {
  /** Nodes run per provider ('cpu', 'cuda', 'webgpu'), copies not counted. */
  readonly nodes: Readonly<Record<string, number>>;
  /** The op types of the nodes run on the CPU, sorted. */
  readonly cpuOps: readonly string[];
  /** Copies between host and device memory that ORT inserted (MemcpyToHost / MemcpyFromHost nodes run). */
  readonly copies: number;
}

/** ORT's provider names, as this project's Provider names. */
const PROVIDER_NAMES: Record<string, string> = { CPUExecutionProvider: 'cpu', CUDAExecutionProvider: 'cuda', WebGpuExecutionProvider: 'webgpu' };

/** The profile files of one session: `<prefix>_<date>.json` in the temporary folder. */
const profileFiles = (prefix: string): string[] =>
  readdirSync(tmpdir())
    .filter((f) => f.startsWith(`${prefix}_`))
    .map((f) => join(tmpdir(), f));

/** Deletes a session's profile files (ORT writes one when a profiled session is released before its first run). */
export const dropProfiles = (prefix: string | null): void => {
  if (prefix !== null) for (const file of profileFiles(prefix)) rmSync(file, { force: true });
};

/** The placement recorded in a session's profile files (after `endProfiling()`); deletes the files. */
export function placementFrom(prefix: string): Placement {
  const nodes: Record<string, number> = {};
  const cpuOps = new Set<string>();
  const seen = new Set<string>();
  let copies = 0;
  for (const file of profileFiles(prefix)) {
    const events = JSON.parse(readFileSync(file, 'utf8')) as Array<{ cat?: string; name?: string; args?: { provider?: string; op_name?: string } }>;
    rmSync(file, { force: true });
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.provider || seen.has(e.name)) continue;
      seen.add(e.name);
      if (e.args.op_name === 'MemcpyToHost' || e.args.op_name === 'MemcpyFromHost') {
        copies++;
        continue;
      }
      const provider = PROVIDER_NAMES[e.args.provider] ?? e.args.provider;
      nodes[provider] = (nodes[provider] ?? 0) + 1;
      if (provider === 'cpu' && e.args.op_name) cpuOps.add(e.args.op_name);
    }
  }
  return { nodes, cpuOps: [...cpuOps].sort(), copies };
}
