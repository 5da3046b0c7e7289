// Adam and AdamW as torch.optim.Adam and torch.optim.AdamW compute them on the CPU (their single-tensor
// path, which both 1.13 and 2.x take there: foreach defaults to False off CUDA), over the flat parameter
// buffer: the same option names, defaults, validation messages and float32 arithmetic.

import { OptionRangeError, OptionTypeError, shown } from './option-errors.js';

export interface AdamOptions {
  /** Learning rate. Default 0.001. */
  lr: number;
  /** Coefficients of the running averages of the gradient and of its square. Default [0.9, 0.999]. */
  betas: [number, number];
  /** Added to the denominator. Default 1e-8. */
  eps: number;
  /** Adam: L2 penalty added to the gradient. AdamW: decoupled decay, param *= 1 - lr * weightDecay.
   *  Default 0 for Adam, 0.01 for AdamW. */
  weightDecay: number;
  /** AMSGrad: normalize by the running maximum of the second moment. Default false. */
  amsgrad: boolean;
  /** Maximize the objective instead of minimizing. Default false. */
  maximize: boolean;
  /** AdamW's decoupled weight decay (torch.optim.AdamW) instead of Adam's L2 term. */
  decoupled: boolean;
}

export const ADAM_DEFAULTS = {
  lr: 1e-3,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  amsgrad: false,
  maximize: false,
} as const;

/** weight_decay's default: torch.optim.Adam's 0, torch.optim.AdamW's 1e-2. */
export function defaultWeightDecay(decoupled: boolean): number {
  return decoupled ? 1e-2 : 0;
}

/** Throws the error torch.optim.Adam (AdamW) would, with the option named the way gradpool users write it. */
export function validateAdam(o: AdamOptions): void {
  const finite = (name: string, v: unknown): void => {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new OptionTypeError(`options.${name} must be a finite number; got ${shown(v)}`);
    }
  };
  finite('lr', o.lr);
  finite('eps', o.eps);
  finite('weightDecay', o.weightDecay);
  if (!Array.isArray(o.betas) || o.betas.length !== 2) {
    throw new OptionTypeError(`options.betas must be an array of two numbers [beta1, beta2]; got ${shown(o.betas)}`);
  }
  finite('betas[0]', o.betas[0]);
  finite('betas[1]', o.betas[1]);
  if (o.lr < 0) throw new OptionRangeError(`Invalid learning rate: options.lr must be >= 0; got ${o.lr}`);
  if (o.eps < 0) throw new OptionRangeError(`Invalid epsilon value: options.eps must be >= 0; got ${o.eps}`);
  for (const i of [0, 1] as const) {
    const b = o.betas[i];
    if (!(b >= 0 && b < 1)) {
      throw new OptionRangeError(`Invalid beta parameter at index ${i}: options.betas[${i}] must be in [0, 1); got ${b}`);
    }
  }
  if (o.weightDecay < 0) throw new OptionRangeError(`Invalid weight_decay value: options.weightDecay must be >= 0; got ${o.weightDecay}`);
  if (typeof o.amsgrad !== 'boolean') throw new OptionTypeError(`options.amsgrad must be a boolean; got ${shown(o.amsgrad)}`);
  if (typeof o.maximize !== 'boolean') throw new OptionTypeError(`options.maximize must be a boolean; got ${shown(o.maximize)}`);
}

/** The moment buffers, each (P) float32 and zero before the first step (torch's zeros_like). */
export interface AdamBuffers {
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  /** AMSGrad's running maximum of expAvgSq; null without amsgrad. */
  maxExpAvgSq: Float32Array | null;
}

/**
 * One step's scalars, worked out once per step as torch works them out in Python doubles, then given to
 * the float32 tensor ops as float32 values (as torch casts a Python scalar to the tensor's dtype).
 */
export interface AdamScalars {
  /** Adam's L2 factor (0: none). */
  wd: number;
  /** AdamW's param.mul_(1 - lr * weight_decay) factor (1: none). */
  decay: number;
  /** lerp_'s weight 1 - beta1. */
  weight: number;
  /** lerp_'s weight - 1, for weights >= 0.5 (torch's lerp switches formula there). */
  weightM1: number;
  beta2: number;
  /** addcmul_'s value 1 - beta2. */
  oneMinusBeta2: number;
  /** sqrt(1 - beta2^t). */
  bc2Sqrt: number;
  eps: number;
  /** addcdiv_'s value: -lr / (1 - beta1^t). */
  negStepSize: number;
  maximize: boolean;
}

const f32 = Math.fround;

/**
 * The scalars of step t (1-based, torch's state['step'] after its increment) at learning rate lr and
 * first-moment coefficient beta1 (a OneCycle schedule may set both step by step). The bias corrections
 * 1 - beta^t are doubles, as torch's Python floats.
 */
export function adamScalars(o: AdamOptions, lr: number, beta1: number, t: number): AdamScalars {
  const beta2 = o.betas[1];
  const bc1 = 1 - beta1 ** t;
  const bc2 = 1 - beta2 ** t;
  const weight = f32(1 - beta1);
  return {
    wd: o.decoupled ? 0 : f32(o.weightDecay),
    decay: o.decoupled ? f32(1 - lr * o.weightDecay) : 1,
    weight,
    weightM1: f32(weight - 1),
    beta2: f32(beta2),
    oneMinusBeta2: f32(1 - beta2),
    bc2Sqrt: f32(Math.sqrt(bc2)),
    eps: f32(o.eps),
    negStepSize: f32(-(lr / bc1)),
    maximize: o.maximize,
  };
}

/**
 * params (P) = the source's params moved by one Adam (AdamW) step on grads (P), the moments likewise
 * from the source's; without a source the step is in place (as torch's), with one it can be repeated
 * (the workers' double-buffered state, see contract.ts). Per element, in torch 2.x's order of float32
 * tensor ops:
 *   g = maximize ? -grad : grad;   Adam: g = g + wd * p (grad.add(param, alpha=wd));  AdamW: p = p * decay
 *   m = m.lerp(g, 1 - beta1)                         (torch 1.13: m * beta1 + (1 - beta1) * g)
 *   v = v * beta2 + ((1 - beta2) * g) * g            (mul_, then addcmul_)
 *   vmax = max(vmax, v)                              (AMSGrad: over the raw v, as torch.maximum)
 *   denom = sqrt(vmax or v) / sqrt(bc2) + eps
 *   p = p + ((-stepSize) * m) / denom                (addcdiv_)
 * Each op rounds to float32; those torch's CPU kernels fuse into one multiply-add (add_ with alpha,
 * lerp_, the last add of addcmul_) are computed here in double and rounded once.
 */
export function adamStep(
  params: Float32Array, grads: Float32Array, state: AdamBuffers, s: AdamScalars,
  source: { params: Float32Array } & AdamBuffers = { params, ...state },
): void {
  const P = params.length;
  const { wd, decay, weight, weightM1, beta2, oneMinusBeta2, bc2Sqrt, eps, negStepSize, maximize } = s;
  const small = weight < 0.5;
  const { expAvg: m, expAvgSq: v, maxExpAvgSq: vmax } = state;
  const src = source.params;
  const srcM = source.expAvg;
  const srcV = source.expAvgSq;
  const srcMax = source.maxExpAvgSq;
  for (let i = 0; i < P; i++) {
    let p = src[i];
    let g = maximize ? -grads[i] : grads[i];
    if (wd !== 0) g = f32(g + wd * p);
    if (decay !== 1) p = f32(p * decay);
    const m0 = srcM[i];
    const diff = f32(g - m0);
    const mt = small ? f32(m0 + weight * diff) : f32(g + weightM1 * diff);
    const vt = f32(f32(srcV[i] * beta2) + f32(oneMinusBeta2 * g) * g);
    m[i] = mt;
    v[i] = vt;
    let vhat = vt;
    if (vmax !== null && srcMax !== null) {
      vhat = srcMax[i] > vt ? srcMax[i] : vt;
      vmax[i] = vhat;
    }
    const denom = f32(f32(f32(Math.sqrt(vhat)) / bc2Sqrt) + eps);
    params[i] = f32(p + f32(f32(negStepSize * mt) / denom));
  }
}
