/**
 * The supervised objectives: causal LM (next-token cross-entropy on the labelled positions),
 * sequence classification and token classification (cross-entropy on the class / tag ids).
 * One step is one optimizer update over `gradAccum` padded micro-batches; evaluation gives the
 * loss with accuracy and macro F1 (classification), or perplexity plus the multiple-choice
 * accuracy of the eval split's choice items (causal LM with a few fixed answers).
 */
import { tensor } from '../../tensor/creation.js';
import type { Device } from '../../tensor/device.js';
import { tidy } from '../../tensor/scope.js';
import { noGrad } from '../../autograd/tape.js';
import * as F from '../../autograd/ops.js';
import type { ModelInputs, ModelOutput, PretrainedModel } from '../../models/common.js';
import type { PeftModel } from '../../peft/base/peft_model.js';
import { makeCollator } from '../../data/collate.js';
import type { Batch, CausalLmExample, ClassificationExample } from '../../data/types.js';
import type { ChoiceSet } from '../../data/choices.js';
import { taskLoss, shiftLabels, ClassificationMetrics, type TrainTask } from '../losses.js';
import { scoreChoices } from '../choice_eval.js';
import type { EvalContext, Objective, StepPlan, WatchedMetric } from '../objective.js';

export type SupervisedExample = CausalLmExample | ClassificationExample;

/** Evaluation figures of the supervised objectives. */
export type EvalResult = {
  loss: number;
  /** classification; causal LM with choice items: multiple-choice accuracy */
  accuracy?: number;
  /** macro F1 over the classes that occur */
  f1?: number;
  /** causal LM: exp(loss) */
  perplexity?: number;
  /** classification: examples scored; causal LM: target tokens in the loss */
  count: number;
};

export interface SupervisedObjectiveOptions {
  task: TrainTask;
  padTokenId: number;
  /** causal LM: multiple-choice items of the eval split; each evaluation of that split adds their accuracy and F1 */
  choices?: ChoiceSet;
}

/**
 * Model inputs of a padded batch: ids and attention mask, [B, T] each, on `device` (the model's).
 * @example const out = model.forward(batchInputs(collate(examples), model.device));
 */
export function batchInputs(batch: Batch, device: Device = 'cpu'): ModelInputs {
  return {
    inputIds: tensor(batch.inputIds, [batch.batch, batch.seqLen], 'i32', device),
    attentionMask: tensor(batch.attentionMask, [batch.batch, batch.seqLen], 'i32', device),
  };
}

/** The targets taskLoss averages over in a batch (labels other than -100; causal LM: after the shift). */
function targetCount(task: TrainTask, batch: Batch): number {
  const labels = task === 'seq_cls' ? batch.classLabels : task === 'causal_lm' && batch.labels ? shiftLabels(batch.labels, batch.batch, batch.seqLen) : batch.labels;
  let n = 0;
  if (labels) for (const l of labels) if (l !== -100) n++;
  return n;
}

/**
 * Causal LM, sequence classification or token classification on a model of that task.
 * @example
 * const objective = new SupervisedObjective(model, { task: 'seq_cls', padTokenId: 0 });
 * await new Trainer({ model, objective, train, eval }).fit();
 */
export class SupervisedObjective implements Objective<SupervisedExample, EvalResult> {
  readonly name: TrainTask;
  readonly dropout = true;
  readonly task: TrainTask;
  readonly collate: (examples: SupervisedExample[]) => Batch;

  constructor(readonly model: PretrainedModel | PeftModel, readonly opts: SupervisedObjectiveOptions) {
    this.task = opts.task;
    this.name = opts.task;
    this.collate = makeCollator({ padTokenId: opts.padTokenId }) as (examples: SupervisedExample[]) => Batch;
  }

  updatesPerStep(): number {
    return 1;
  }

  /**
   * One update: each loader batch is a micro-batch; tokens are the attention mask's ones; counts
   * are the targets each micro-batch's mean loss is over (what taskLoss counts).
   */
  plan(batches: SupervisedExample[][]): StepPlan {
    let tokens = 0;
    const counts: number[] = [];
    // batches go where the model is (Trainer({ device }) moved it there)
    const device = this.model.device;
    const micro = batches.map((examples) => {
      const batch = this.collate(examples);
      for (const m of batch.attentionMask) tokens += m;
      counts.push(targetCount(this.task, batch));
      return () => {
        const out: ModelOutput = this.model.forward(batchInputs(batch, device));
        return { loss: taskLoss(this.task, out, batch).loss };
      };
    });
    return { updates: [micro], counts: [counts], tokens };
  }

  evaluate(examples: SupervisedExample[], ctx: EvalContext): EvalResult {
    const bs = ctx.batchSize;
    const metrics = new ClassificationMetrics(Math.max(2, this.model.config.numLabels));
    let lossSum = 0, count = 0;
    const device = this.model.device;
    noGrad(() => {
      for (let i = 0; i < examples.length; i += bs) {
        const batch = this.collate(examples.slice(i, i + bs));
        tidy(() => {
          const out = this.model.forward(batchInputs(batch, device));
          const { loss, count: n } = taskLoss(this.task, out, batch);
          lossSum += loss.item() * n;
          count += n;
          if (this.task !== 'causal_lm') {
            const pred = F.argmax(out.logits).toArray();
            const gold = this.task === 'seq_cls' ? batch.classLabels! : batch.labels!;
            pred.forEach((p, j) => metrics.add(p, gold[j]!));
          }
        });
      }
    });
    const loss = count ? lossSum / count : NaN;
    if (this.task === 'causal_lm') {
      const choices = this.opts.choices && ctx.evalSplit ? scoreChoices(this.model, this.opts.choices, { padTokenId: this.opts.padTokenId, batchSize: bs }) : null;
      return { loss, perplexity: Math.exp(loss), count, ...(choices ? { accuracy: choices.accuracy, f1: choices.f1 } : {}) };
    }
    return { loss, accuracy: metrics.accuracy, f1: metrics.macroF1, count };
  }

  /** Accuracy when the evaluation has it (classification, choice items), else the loss. */
  defaultWatch(result: EvalResult): WatchedMetric {
    return result.accuracy !== undefined ? { key: 'accuracy', mode: 'max' } : { key: 'loss', mode: 'min' };
  }

  describeEval(r: EvalResult): string {
    return `loss ${r.loss.toFixed(4)}${r.accuracy !== undefined ? `, accuracy ${(r.accuracy * 100).toFixed(2)}%` : ''}${r.perplexity !== undefined ? `, perplexity ${r.perplexity.toFixed(2)}` : ''}`;
  }
}
