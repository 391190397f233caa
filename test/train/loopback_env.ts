/**
 * Imported first by test/train/loopback_device.test.ts: turns on the loopback device
 * (lib/tensor/loopback.ts) before any tunekit module loads, since the switch is read once at load.
 */
process.env.TUNEKIT_LOOPBACK_DEVICE = '1';
