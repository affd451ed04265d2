/**
 * Keeps request bodies streamed through JS from piling up dead buffers. V8 collects dead
 * ArrayBuffers once the memory it knows of outside its heap has grown by its soft limit
 * (64 MiB) since the last collection. Every socket read of a body leaves a dead 64 KiB buffer
 * behind, so on V8 12+ (Node 22 and later) a whole limit's worth piled up before each
 * collection: a 1 GiB upload grew the server by ~68 MiB. Announcing transient outside-heap
 * memory every STEP bytes (native reportTransientMemory: napi_adjust_external_memory up, then
 * down) brings the collection once about two steps' worth are dead (~28 MiB).
 */
import { native } from './binding.js';

const SOFT_LIMIT = 64 * 1024 * 1024;
const STEP = 8 * 1024 * 1024;

export class BodyMemory {
  #since = 0;

  /** Counts `bytes` of body streamed through; reports to V8 every STEP bytes. */
  streamed(bytes: number): void {
    this.#since += bytes;
    if (this.#since < STEP) return;
    this.#since = 0;
    native.reportTransientMemory(SOFT_LIMIT - 2 * STEP);
  }
}
