/**
 * Yielding to the event loop between units of long compute (optimizer steps, generated tokens,
 * quantized layers) so that timers, I/O and HTTP requests run between any two of them.
 *
 * One `setImmediate` is not enough: an immediate queued from an I/O callback (where an awaited
 * file read resumes) runs in the same turn of the loop, before its timers, so the next unit ran
 * back to back with the first one. An immediate queued while the loop runs its immediates waits
 * for the next turn, which runs the timers that are due first. Two in a row therefore always let
 * a timers phase (and a poll for I/O) pass, for about 10 us more than one; a `setTimeout(0)`
 * would wait at least 1 ms.
 */
import { setImmediate as immediate } from 'node:timers/promises';

/**
 * Resolves after the event loop has been through its timers and I/O phases at least once.
 *
 * @example
 * for (const batch of batches) { step(batch); await yieldToEventLoop(); }
 */
export async function yieldToEventLoop(): Promise<void> {
  await immediate();
  await immediate();
}
