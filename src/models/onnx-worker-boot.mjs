// Entry of the OnnxModel worker thread: registers tsx in this thread, then loads the TypeScript worker.
// (On Node 20 a Worker's `execArgv: ['--import', 'tsx']` does not apply to its entry module, nodejs/node#47747,
// and tsx registers itself only on the main thread there, so the worker does it explicitly.)
import { register } from 'tsx/esm/api';

register();
await import('./onnx-worker.ts');
