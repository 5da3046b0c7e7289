// Copying a checkpoint's tensors into a model's parameters, refusing any that do not fit.

import { CheckpointError } from '../errors.js';
import type { Checkpoint } from './safetensors.js';
import { fmtShape, sameShape } from './text.js';
import { paramLayout, type ParamEntry } from '../../shared/model.js';

/**
 * Copies the tensors of `ckpt` into `params` laid out for `layers`, refusing any tensor whose name is
 * missing or whose shape differs, naming the tensor and both shapes. Checks everything before copying,
 * so a refused checkpoint leaves `params` as it was.
 */
export function assignParameters(params: Float32Array, layers: number[], ckpt: Checkpoint, path: string): void {
  const layout = paramLayout(layers);
  if (params.length !== layout.total) {
    throw new RangeError(`params has ${params.length} floats; layers ${JSON.stringify(layers)} need ${layout.total}`);
  }
  const source = paramLayout(ckpt.config.layers);
  if (ckpt.params.length !== source.total) {
    throw new CheckpointError(
      path,
      `checkpoint holds ${ckpt.params.length} floats ` +
        `but its layers ${JSON.stringify(ckpt.config.layers)} need ${source.total}`,
    );
  }
  const byName = new Map<string, ParamEntry>(source.entries.map((e) => [e.name, e]));
  const hint =
    `build the Trainer with layers ${JSON.stringify(ckpt.config.layers)} (the checkpoint's), ` +
    'or start from fresh weights';
  for (const e of layout.entries) {
    const s = byName.get(e.name);
    if (s === undefined) {
      const message = `has no tensor '${e.name}'; this model needs it with shape ${fmtShape(e.shape)}`;
      throw new CheckpointError(path, message, hint);
    }
    if (!sameShape(s.shape, e.shape)) {
      throw new CheckpointError(
        path,
        `tensor '${e.name}' has shape ${fmtShape(s.shape)} but this model needs ${fmtShape(e.shape)}`,
        hint,
      );
    }
  }
  for (const e of layout.entries) {
    const s = byName.get(e.name) as ParamEntry;
    params.set(ckpt.params.subarray(s.offset, s.offset + s.size), e.offset);
  }
}
