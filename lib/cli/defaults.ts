/**
 * The main job `tunekit train` runs with no config: LoRA on the built-in pretrained GPT-2 base,
 * spam/ham classification of the SpamAssassin corpus (fixed 80/20 split).
 */
export const DEFAULT_TRAIN_CONFIG = {
  model: 'builtin:tunekit-gpt2-small',
  task: 'seq_cls',
  method: 'lora',
  // the token table gets a LoRA adapter too (it mattered on the previous base; README, Results)
  peft: { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['wte', 'c_attn', 'c_proj', 'c_fc'] },
  // head + tail of each e-mail: its first 192 tokens and its last 64
  dataset: { path: 'builtin:spam-assassin', max_length: 256, truncation: 'keep_start_and_end' },
  training: { epochs: 1, batch_size: 16, lr: 2e-3, schedule: 'linear', warmup_ratio: 0.06, weight_decay: 0.01 },
  output_dir: 'runs/spam-lora',
  logging: { every: 10 },
} as const;
