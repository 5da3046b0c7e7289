// A model's weights from any safetensors file: a gradpool checkpoint by its recorded config, or a file
// with no gradpool metadata (written by PyTorch) by its tensors' names (nn.Sequential's state_dict names
// or gradpool's) or else by their order in the file; F64, F16 and BF16 tensors are converted to float32.
// A file that fits the model in none of these ways is refused with what it holds beside what is needed.

import { CheckpointError } from '../errors.js';
import { assignParameters } from './parameters.js';
import { checkpointOf, checkTiling, tensorFloats, type Checkpoint, type SafetensorsFile, type TensorInfo } from './safetensors.js';
import { CONFIG_KEY } from './metadata.js';
import { fmtShape, quote, sameShape } from './text.js';
import { paramLayout, type ParamEntry } from '../../shared/model.js';

/** How a file's tensors were matched to the model's: a gradpool checkpoint (its config and names);
 *  gradpool's names ('layers.0.weight') or nn.Sequential's state_dict names ('0.weight') without a
 *  config; or, whatever their names, each layer's weight and bias in the order of the file's data. */
export type WeightsMatch = 'checkpoint' | 'gradpool-names' | 'sequential-names' | 'file-order';

/** What loadParameters() and Trainer.load() read from a file, and how. */
export interface ImportedWeights {
  path: string;
  matchedBy: WeightsMatch;
  /** For each of the model's tensors, in the model's order: the file's tensor and its dtype. */
  tensors: { name: string; from: string; dtype: string }[];
  /** The file's tensors that were converted to float32 (F64, F16, BF16). */
  converted: { name: string; dtype: string }[];
  /** The above in one line, for a log. */
  summary: string;
}

export interface Weights {
  /** (P) in paramLayout(layers) order. */
  params: Float32Array;
  imported: ImportedWeights;
  /** The checkpoint, when the file is one (it then also holds options and training state). */
  checkpoint: Checkpoint | null;
}

const MATCH_TEXT: Record<WeightsMatch, string> = {
  checkpoint: 'from a gradpool checkpoint',
  'gradpool-names': "by gradpool's tensor names",
  'sequential-names': "by their nn.Sequential state_dict names",
  'file-order': 'by their order in the file',
};

/** The weights for a model of `layers` in `file` (read from `path`), matched as the file allows. */
export function weightsFor(file: SafetensorsFile, layers: number[], path: string): Weights {
  const layout = paramLayout(layers);
  if (Object.hasOwn(file.metadata, CONFIG_KEY)) {
    const checkpoint = checkpointOf(file, path);
    const params = new Float32Array(layout.total);
    assignParameters(params, layers, checkpoint, path);
    const tensors = layout.entries.map((e) => ({ name: e.name, from: e.name, dtype: 'F32' }));
    return { params, checkpoint, imported: imported(path, 'checkpoint', tensors) };
  }
  checkTiling(file, path);
  // Names first (the first naming the file uses that fits), then the order of the file's tensors.
  const tried = [...namings(file, layout.entries), { match: 'file-order' as const, result: byOrder(file.tensors, layout.entries) }];
  const found = tried.find((n) => typeof n.result !== 'string');
  if (found === undefined) {
    throw new CheckpointError(
      path,
      `does not fit this model: ${tried[0].result as string}\n  the file holds ${holdings(file.tensors)}\n` +
        `  the model (layers ${JSON.stringify(layers)}) needs ${needs(layout.entries)}`,
      "name the tensors as nn.Sequential's state_dict does (0.weight, 0.bias, 2.weight, ...) or as gradpool does " +
        "(layers.0.weight, ...), or store each layer's weight (out, in) and bias (out) in order; or give the model the file's widths",
    );
  }
  const fit = found.result as TensorInfo[];
  const matchedBy = found.match;
  const params = new Float32Array(layout.total);
  fit.forEach((t, i) => params.set(tensorFloats(file, t, path), layout.entries[i].offset));
  const tensors = fit.map((t, i) => ({ name: layout.entries[i].name, from: t.name, dtype: t.dtype }));
  return { params, checkpoint: null, imported: imported(path, matchedBy, tensors) };
}

interface Naming {
  match: WeightsMatch;
  /** The file's tensor for each of the model's, or why the names do not fit. */
  result: TensorInfo[] | string;
}

/** The namings the file's tensors use (gradpool's 'layers.N.', nn.Sequential's 'N.'), each tried. */
function namings(file: SafetensorsFile, entries: ParamEntry[]): Naming[] {
  const out: Naming[] = [];
  const tries: [WeightsMatch, RegExp, (name: string) => string][] = [
    ['gradpool-names', /^layers\./, (name) => name],
    ['sequential-names', /^\d+\./, (name) => name.slice('layers.'.length)],
  ];
  for (const [match, owned, rename] of tries) {
    if (file.tensors.some((t) => owned.test(t.name))) out.push({ match, result: byNames(file.tensors, entries, owned, rename) });
  }
  return out;
}

/** The tensors named rename(entry.name), or the first problem: one missing or of another shape, or a
 *  tensor of that naming (`owned`) that the model has no place for (a layer more, a norm layer). */
function byNames(
  tensors: TensorInfo[], entries: ParamEntry[], owned: RegExp, rename: (name: string) => string,
): TensorInfo[] | string {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const wanted = new Set(entries.map((e) => rename(e.name)));
  const out: TensorInfo[] = [];
  for (const e of entries) {
    const name = rename(e.name);
    const t = byName.get(name);
    if (t === undefined) return `it has no tensor '${name}' (for ${e.name}, shape ${fmtShape(e.shape)})`;
    if (!sameShape(t.shape, e.shape)) return `tensor '${name}' has shape ${fmtShape(t.shape)}; the model needs ${fmtShape(e.shape)}`;
    out.push(t);
  }
  const extra = tensors.find((t) => owned.test(t.name) && !wanted.has(t.name));
  if (extra !== undefined) return `the model has no place for its tensor ${quote(extra.name)} ${fmtShape(extra.shape)}`;
  return out;
}

/** Whatever their names, the file's 2-D tensors in file order as the layers' weights and its 1-D tensors
 *  as their biases (so a file that stores each bias before its weight, as names sorted alphabetically
 *  do, fits too); every tensor must be one of them. */
function byOrder(tensors: TensorInfo[], entries: ParamEntry[]): TensorInfo[] | string {
  const other = tensors.find((t) => t.shape.length !== 1 && t.shape.length !== 2);
  if (other !== undefined) return `tensor ${quote(other.name)} has shape ${fmtShape(other.shape)}, neither a weight (out, in) nor a bias (out)`;
  const weights = tensors.filter((t) => t.shape.length === 2);
  const biases = tensors.filter((t) => t.shape.length === 1);
  const L = entries.length / 2;
  if (weights.length !== L || biases.length !== L) {
    return `in file order it holds ${weights.length} 2-D and ${biases.length} 1-D tensors; the model's ${L} linear layers need ${L} of each`;
  }
  const out: TensorInfo[] = [];
  for (let l = 0; l < L; l++) {
    for (const [t, e] of [[weights[l], entries[2 * l]], [biases[l], entries[2 * l + 1]]] as const) {
      if (!sameShape(t.shape, e.shape)) {
        return `in file order, tensor ${quote(t.name)} ${fmtShape(t.shape)} would be ${e.name}, which needs ${fmtShape(e.shape)}`;
      }
      out.push(t);
    }
  }
  return out;
}

function imported(path: string, matchedBy: WeightsMatch, tensors: ImportedWeights['tensors']): ImportedWeights {
  const converted = tensors.filter((t) => t.dtype !== 'F32').map((t) => ({ name: t.from, dtype: t.dtype }));
  const renamed = tensors.some((t) => t.from !== t.name);
  const shown = tensors.slice(0, 4).map((t) => (renamed ? `${t.from} -> ${t.name}` : t.name)).join(', ');
  const summary = `${path}: ${tensors.length} tensors ${MATCH_TEXT[matchedBy]} (${shown}${tensors.length > 4 ? ', ...' : ''})` +
    (converted.length === 0 ? '' : `; converted to float32: ${converted.map((c) => `${c.name} (${c.dtype})`).join(', ')}`);
  return { path, matchedBy, tensors, converted, summary };
}

/** The file's tensors as 'name (shape) dtype', the first 12 and a count of the rest. */
export function holdings(tensors: TensorInfo[]): string {
  if (tensors.length === 0) return 'no tensors';
  const shown = tensors.slice(0, 12).map((t) => `${quote(t.name)} ${fmtShape(t.shape)} ${t.dtype}`).join(', ');
  return `${tensors.length} tensor${tensors.length === 1 ? '' : 's'}: ${shown}${tensors.length > 12 ? `, and ${tensors.length - 12} more` : ''}`;
}

function needs(entries: ParamEntry[]): string {
  const shown = entries.slice(0, 12).map((e) => `${e.name} ${fmtShape(e.shape)}`).join(', ');
  return `${shown}${entries.length > 12 ? `, and ${entries.length - 12} more` : ''}`;
}
