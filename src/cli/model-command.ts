// What the commands that use a saved model share (`gradpool evaluate`, `gradpool predict`): opening the
// checkpoint as a Trainer, and the line that says what model it is and what preprocessing it records.

import { Trainer } from '../main/index.js';
import { namesText } from './output.js';

/** The checkpoint at `path` as a Trainer (its parameters, options and preprocessing). */
export async function openModel(path: string | undefined, workers: number | undefined): Promise<Trainer> {
  return Trainer.load(path as string, workers === undefined ? {} : { workers });
}

/** 'model m.safetensors: MLP 4-16-3 (relu), cross-entropy; inputs standardize-normalised, ...'. */
export function modelLine(trainer: Trainer, path: string): string {
  const o = trainer.options;
  const p = trainer.preprocessing;
  const head = `model ${path}: MLP ${o.layers.join('-')} (${o.activation}), ${o.loss}`;
  if (p === null) {
    return `${head}\nnote: ${path} records no preprocessing (written by an earlier gradpool, or trained on prepared arrays): ` +
      'features are used as the file gives them, with no normalisation\n';
  }
  const parts = [
    p.normalize === null ? 'no normalisation' : `features normalised (${p.normalize.mode}, training statistics)`,
    p.featureNames === null ? '' : `${p.featureNames.length} feature columns`,
    p.labelNames === null ? '' : `label ${p.labelNames.join(', ')}`,
    p.classNames === null ? '' : `${p.classNames.length} classes ${namesText(p.classNames)}`,
  ].filter((s) => s !== '');
  return `${head}; ${parts.join('; ')}\n`;
}
