/**
 * Registers every built-in architecture with the registry. Anything that turns a config.json
 * into a model (the loader, the CLI through it) imports this file, so that a model_type is
 * known whichever entry point the user came through (the CLI once knew only GPT-2 because
 * nothing on its path imported bert.ts or llama.ts).
 */
import './gpt2.js';
import './bert.js';
import './llama.js';
import './resnet.js';
import './vit.js';
