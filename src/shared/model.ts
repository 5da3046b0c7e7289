// The model's shape and the one flat parameter layout that the coordinator, the workers and the
// checkpoint all read: an ordered table of (name, shape, offset), in PyTorch's nn.Sequential order.
// Dimension letters used in shape comments across src/: B batch (or shard) rows, C input features of
// a layer, OC its outputs, K classes (outputs of the last layer), P total parameter count.

export type Activation = 'relu' | 'tanh' | 'sigmoid';
export type LossName = 'cross-entropy' | 'bce-with-logits' | 'bce' | 'sigmoid-focal' | 'softmax-focal';

export const ACTIVATIONS: readonly Activation[] = ['relu', 'tanh', 'sigmoid'];
export const LOSSES: readonly LossName[] = ['cross-entropy', 'bce-with-logits', 'bce', 'sigmoid-focal', 'softmax-focal'];

/**
 * Softmax losses treat the K outputs as one distribution over classes (targets: class indices, or class
 * probabilities for cross-entropy); the others treat them as K independent sigmoids with (N, K) targets
 * in [0, 1]. This decides what predict() returns and what accuracy means.
 */
export function isSoftmaxLoss(loss: LossName): boolean {
  return loss === 'cross-entropy' || loss === 'softmax-focal';
}

/** The loss a model gets when none is named: logistic regression's for one output, softmax
 *  cross-entropy's for several (what a PyTorch user writes for each). */
export function defaultLoss(outputs: number): LossName {
  return outputs === 1 ? 'bce-with-logits' : 'cross-entropy';
}

/** What a model is: enough to rebuild it, and what a checkpoint stores in its metadata. */
export interface ModelConfig {
  /** Widths from input to output, e.g. [784, 128, 10]. [D, 1] is logistic regression. */
  layers: number[];
  /** Nonlinearity between linear layers (not after the last). */
  activation: Activation;
  /** Loss applied to the last layer's logits (its options, such as class weights, are in LossSpec). */
  loss: LossName;
}

export interface ParamEntry {
  /** PyTorch state_dict key, e.g. 'layers.0.weight'. */
  name: string;
  /** (OC, C) for a weight, (OC) for a bias: nn.Linear's layout. */
  shape: number[];
  /** Offset in floats into the flat parameter buffer. */
  offset: number;
  size: number;
}

export interface ParamLayout {
  entries: ParamEntry[];
  /** P: total floats. */
  total: number;
}

/**
 * The sequential index of linear layer l in the equivalent torch.nn.Sequential, where an activation
 * module sits between two linears: Linear(0), Act(1), Linear(2), ... So tensor names are
 * 'layers.0.weight', 'layers.2.weight', ... and load into `nn.Sequential` with the prefix removed.
 */
export function sequentialIndex(l: number): number {
  return 2 * l;
}

export function paramLayout(layers: readonly number[]): ParamLayout {
  const entries: ParamEntry[] = [];
  let offset = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const C = layers[l];
    const OC = layers[l + 1];
    const idx = sequentialIndex(l);
    entries.push({ name: `layers.${idx}.weight`, shape: [OC, C], offset, size: OC * C });
    offset += OC * C;
    entries.push({ name: `layers.${idx}.bias`, shape: [OC], offset, size: OC });
    offset += OC;
  }
  return { entries, total: offset };
}

/** Per linear layer, the weight (OC, C) and bias (OC) views into one flat buffer. */
export interface LinearViews {
  weight: Float32Array;
  bias: Float32Array;
  C: number;
  OC: number;
}

/** Named views into a flat buffer laid out by paramLayout (parameters, gradients or momentum alike). */
export function linearViews(flat: Float32Array, layers: readonly number[]): LinearViews[] {
  const { entries } = paramLayout(layers);
  const views: LinearViews[] = [];
  for (let i = 0; i < entries.length; i += 2) {
    const w = entries[i];
    const b = entries[i + 1];
    views.push({
      weight: flat.subarray(w.offset, w.offset + w.size),
      bias: flat.subarray(b.offset, b.offset + b.size),
      C: w.shape[1],
      OC: w.shape[0],
    });
  }
  return views;
}

/** Floating-point operations for one sample's forward + backward (2 per multiply-add). */
export function flopsPerSample(layers: readonly number[]): number {
  let f = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const mac = layers[l] * layers[l + 1];
    // forward, weight gradient, and input gradient except for the first layer (its input is data)
    f += 2 * mac * (l === 0 ? 2 : 3);
  }
  return f;
}

/**
 * The float counts of the arrays a shard's forward and backward pass keep in the WebAssembly kernels'
 * memory, for up to maxRows rows: the inputs x, each layer's z and dz, and a and da of all but the last
 * (whose a is its z). worker/shard.ts createScratch allocates exactly these; the coordinator sizes each
 * worker's kernel region from them (contract.ts stateLayout).
 */
export function kernelArrays(layers: readonly number[], maxRows: number): number[] {
  const widths = layers.slice(1);
  const hidden = widths.slice(0, -1);
  return [layers[0], ...widths, ...widths, ...hidden, ...hidden].map((w) => maxRows * w);
}

/**
 * The lengths of the arrays of a shard's scratch that stay in the worker's own heap whatever the
 * kernels, for up to maxRows rows: class-index targets (int32), value targets, softmax probabilities and
 * losses (float32, K per row). worker/shard.ts createScratch allocates exactly these.
 */
export function heapArrays(layers: readonly number[], maxRows: number): { yIndex: number; yValue: number; probs: number; losses: number } {
  const K = layers[layers.length - 1];
  return { yIndex: maxRows, yValue: maxRows * K, probs: maxRows * K, losses: maxRows * K };
}

/**
 * Bytes of a worker's shard scratch in its own heap: heapArrays, and kernelArrays too when the kernels
 * are the TypeScript ones (the WebAssembly kernels keep those in their region of the state memory). Every
 * element is 4 bytes. The coordinator checks the workers' memory with it before starting them.
 */
export function heapScratchBytes(layers: readonly number[], maxRows: number, withKernelArrays: boolean): number {
  const sum = (ns: readonly number[]): number => ns.reduce((a, b) => a + b, 0);
  return 4 * (sum(Object.values(heapArrays(layers, maxRows))) + (withKernelArrays ? sum(kernelArrays(layers, maxRows)) : 0));
}
