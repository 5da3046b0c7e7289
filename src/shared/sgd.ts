// Stochastic gradient descent as torch.optim.SGD computes it (its single-tensor path), over the flat
// parameter buffer: the same option names, defaults, validation rules and float32 arithmetic.

import { OptionRangeError, OptionTypeError, shown } from './option-errors.js';

export interface SGDOptions {
  /** Learning rate. Default 0.001, as torch.optim.SGD. */
  lr: number;
  /** Momentum factor. Default 0. */
  momentum: number;
  /** Dampening for momentum. Default 0. */
  dampening: number;
  /** L2 penalty added to the gradient (weight_decay). Default 0. */
  weightDecay: number;
  /** Nesterov momentum. Default false; requires momentum > 0 and dampening 0. */
  nesterov: boolean;
  /** Maximize the objective instead of minimizing. Default false. */
  maximize: boolean;
}

export const SGD_DEFAULTS: Readonly<SGDOptions> = {
  lr: 1e-3,
  momentum: 0,
  dampening: 0,
  weightDecay: 0,
  nesterov: false,
  maximize: false,
};

/** Throws the error torch.optim.SGD would, with the option named the way gradpool users write it. */
export function validateSGD(o: SGDOptions): void {
  const finite = (name: keyof SGDOptions, v: unknown): void => {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new OptionTypeError(`options.${name} must be a finite number; got ${shown(v)}`);
    }
  };
  finite('lr', o.lr);
  finite('momentum', o.momentum);
  finite('dampening', o.dampening);
  finite('weightDecay', o.weightDecay);
  if (o.lr < 0) throw new OptionRangeError(`Invalid learning rate: options.lr must be >= 0; got ${o.lr}`);
  if (o.momentum < 0) throw new OptionRangeError(`Invalid momentum value: options.momentum must be >= 0; got ${o.momentum}`);
  if (o.weightDecay < 0) throw new OptionRangeError(`Invalid weight_decay value: options.weightDecay must be >= 0; got ${o.weightDecay}`);
  if (typeof o.nesterov !== 'boolean') throw new OptionTypeError(`options.nesterov must be a boolean; got ${shown(o.nesterov)}`);
  if (typeof o.maximize !== 'boolean') throw new OptionTypeError(`options.maximize must be a boolean; got ${shown(o.maximize)}`);
  if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
    throw new OptionRangeError(
      `Nesterov momentum requires a momentum and zero dampening; got momentum ${o.momentum}, dampening ${o.dampening}`,
    );
  }
}

/** What SGD keeps between steps: the momentum buffer and whether it has been started. */
export interface SGDState {
  /** (P) float32, the momentum buffer; torch creates it on the first step as a copy of the gradient. */
  momentumBuffer: Float32Array;
  hasMomentumBuffer: boolean;
}

const f32 = Math.fround;

/**
 * Whether a step at this momentum uses the momentum buffer, and so starts it (torch's momentum != 0, on
 * the float32 factor the step multiplies by). A step that does not leaves the buffer as it was.
 */
export function usesMomentum(momentum: number): boolean {
  return f32(momentum) !== 0;
}

/** Where a step reads the parameters and momentum buffer from, when not from where it writes them. */
export interface SGDSource {
  params: Float32Array;
  momentumBuffer: Float32Array;
}

/**
 * params (P) = source params - lr * direction, where direction is built from grads (P) as
 * torch.optim.SGD builds it, and the momentum buffer likewise from the source's. Without a source the
 * step is in place, as torch's; with one, a step can be repeated from the same source (the workers'
 * double-buffered parameters, see contract.ts). lr and momentum are given apart from `o` because a
 * schedule may set them step by step.
 * Each tensor op of torch rounds to float32; here each is computed in double and rounded once, which is
 * what torch's fused multiply-add kernels give. Scalars are rounded to float32 first, as torch does.
 */
export function sgdStep(
  params: Float32Array, grads: Float32Array, state: SGDState, o: SGDOptions, lr: number, momentum = o.momentum,
  source: SGDSource = { params, momentumBuffer: state.momentumBuffer },
): void {
  const P = params.length;
  const wd = f32(o.weightDecay);
  const mom = f32(momentum);
  const damp = f32(1 - o.dampening);
  const step = f32(-lr);
  const buf = state.momentumBuffer;
  const src = source.params;
  const srcBuf = source.momentumBuffer;
  const first = !state.hasMomentumBuffer;
  // The two common settings get loops without per-element branches: the same operations, so the same bits.
  if (wd === 0 && !o.maximize && !o.nesterov && damp === 1 && (mom === 0 || !first)) {
    if (mom === 0) {
      for (let i = 0; i < P; i++) params[i] = src[i] + step * grads[i];
      return;
    }
    for (let i = 0; i < P; i++) {
      const b = f32(f32(srcBuf[i] * mom) + grads[i]);
      buf[i] = b;
      params[i] = src[i] + step * b;
    }
    return;
  }
  for (let i = 0; i < P; i++) {
    const p = src[i];
    let g = o.maximize ? -grads[i] : grads[i];
    if (wd !== 0) g = f32(g + wd * p);
    if (mom !== 0) {
      const b = first ? g : f32(f32(srcBuf[i] * mom) + damp * g);
      buf[i] = b;
      g = o.nesterov ? f32(g + mom * b) : b;
    }
    params[i] = p + step * g;
  }
  if (usesMomentum(momentum)) state.hasMomentumBuffer = true;
}
