/**
 * Data-parallel training (docs/distributed.md): the process group over MPI, DDP-style gradient
 * buckets, the ranks' side of the Trainer, and the local launcher behind `--nproc`.
 */
export {
  initProcessGroup, activeProcessGroup, launcherWorld, mpiLibrary, allreduceNumbers, broadcastJson,
  type ProcessGroup, type ProcessGroupOptions, type Work, type CollectiveStats, type LauncherWorld,
} from './process_group.js';
export { GradientReducer, type ReducerOptions, type ReductionReport } from './reducer.js';
export { DataParallel, type DataParallelOptions, type DataParallelSummary, type StepScales } from './data_parallel.js';
export { launchRanks, findLauncher, type LaunchOptions, type Launcher } from './launch.js';
