/**
 * Loads TensorFlow.js with the wasm backend (installed in this folder by setup.sh) and says which
 * binary runs. Shared by kernels.mjs and setup.sh's check.
 *
 * Threads: tfjs-backend-wasm 4.x reports WASM_HAS_MULTITHREAD_SUPPORT = false under Node
 * (tensorflow/tfjs#3830), so Node gets the single-threaded SIMD binary. Forcing the flag does not
 * help: the threaded build starts its pthread pool from blob: URLs, which Node's worker_threads
 * refuse (ERR_WORKER_PATH), and the backend fails to initialise. The TF.js figures are therefore
 * one thread, whatever --threads says.
 *
 *   const { tf, info } = await loadTfjsWasm();
 *   // info: { impl: 'tfjs-wasm', version: '4.22.0', simd: true, threads: 1 }
 */
// @tensorflow/tfjs, not tfjs-core: tfjs-core's Node bundle registers no gradients (tf.grads fails
// with 'gradient function not found for Sum') and its ESM dist, whose register_all_gradients.js
// would, uses extensionless imports that Node's ESM loader refuses. The union bundle registers them.
import * as tf from '@tensorflow/tfjs';
import * as wasm from '@tensorflow/tfjs-backend-wasm';

export async function loadTfjsWasm() {
  if (!(await tf.setBackend('wasm'))) throw new Error('TF.js: the wasm backend did not initialise (run bash bench/reference/tfjs/setup.sh)');
  await tf.ready();
  const info = {
    impl: 'tfjs-wasm',
    version: tf.version_core,
    backend: tf.getBackend(),
    simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    multithreadSupported: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
    threads: wasm.getThreadsCount(),
  };
  return { tf, info };
}
