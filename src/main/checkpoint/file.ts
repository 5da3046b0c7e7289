// Checkpoint files: written atomically (a checkpoint is either the old file or the new one, never a
// torn one), read with every failure named by the path.

import { writeFileAtomic } from '../system/atomic-file.js';
import { CheckpointError } from '../errors.js';
import { NotRegularFileError, readRegularFile } from '../system/regular-file.js';
import { decodeCheckpoint, encodeCheckpoint, readSafetensors, type Checkpoint, type SafetensorsFile } from './safetensors.js';
import type { ModelConfig } from '../../shared/model.js';

/** Writes a checkpoint atomically (see atomic-file.ts): whatever was at `path` stays until the new file
 *  is whole. `extra` metadata and `tensors` as encodeCheckpoint takes them. */
export async function saveCheckpoint(
  path: string,
  config: ModelConfig,
  params: Float32Array,
  extra?: Record<string, string>,
  tensors?: Record<string, Float32Array>,
): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(config, params, extra, tensors));
}

/** Reads and decodes the checkpoint at `path`; a missing file is a CheckpointError saying so. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  return decodeCheckpoint(await readBytes(path), path);
}

/** Reads any safetensors file at `path` and checks its header (readSafetensors): a gradpool checkpoint
 *  or a file written by another tool. */
export async function loadSafetensors(path: string): Promise<SafetensorsFile> {
  return readSafetensors(await readBytes(path), path);
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readRegularFile(path);
  } catch (err) {
    if (err instanceof NotRegularFileError) throw new CheckpointError(path, `is ${err.kind}, not a checkpoint file; expected a regular file (safetensors)`);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new CheckpointError(path, 'no such file', 'check the path, or train without loading a checkpoint');
    }
    if (code === 'EISDIR') throw new CheckpointError(path, 'is a directory, not a checkpoint file');
    throw new CheckpointError(path, `cannot read the file (${(err as Error).message})`);
  }
}
