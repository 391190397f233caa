/**
 * The job registry of runTraining: a job registered for a task takes every run of that task,
 * then a job listing the method, then one whose test takes it; an unknown method is ERR_CONFIG
 * naming the registered jobs; a method listed twice is refused. The supervised job takes full,
 * head_only and every PEFT method; lib/rlhf registers reward, dpo and ppo.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import '../../lib/train/run.js';
import { registerRunJob, runJobFor, type RunJob } from '../../lib/train/run_job.js';
import { supervisedJob } from '../../lib/train/run_supervised.js';
import { rewardJob, dpoJob, ppoJob } from '../../lib/rlhf/jobs.js';

const fake = (): RunJob => ({ prepareData: async () => ({ train: [], eval: [], unit: 'x' }), buildModel: () => { throw new Error('unused'); }, objective: () => { throw new Error('unused'); }, writeOutputs: async () => {} });

describe('run jobs', () => {
  it('the registered jobs of the methods', () => {
    for (const m of ['full', 'head_only', 'lora', 'qlora', 'adalora', 'prompt_tuning', 'p_tuning', 'prefix_tuning']) expect(runJobFor(m), m).toBe(supervisedJob);
    expect(runJobFor('reward')).toBe(rewardJob);
    expect(runJobFor('dpo')).toBe(dpoJob);
    expect(runJobFor('ppo')).toBe(ppoJob);
  });

  it('a task job comes first; unknown methods and a method listed twice are refused', () => {
    const taskJob = fake();
    registerRunJob('test-task', { tasks: ['test_task'] }, taskJob);
    expect(runJobFor('lora', 'test_task')).toBe(taskJob);
    expect(runJobFor('lora', 'seq_cls')).toBe(supervisedJob);
    expect(() => runJobFor('no_such_method')).toThrow(/method 'no_such_method': no training job is registered for it \(registered: .*reward, .*dpo.*ppo/);
    expect(() => registerRunJob('another-dpo', ['dpo'], fake())).toThrow(/method 'dpo' already belongs to the 'dpo' job/);
    // registering under the same name again replaces the job (a module loaded twice)
    const again = fake();
    registerRunJob('test-task', { tasks: ['test_task'] }, again);
    expect(runJobFor('full', 'test_task')).toBe(again);
  });
});
