// The model as an ONNX graph, for serving it with any ONNX runtime: the recorded input normalisation
// as its first nodes (Sub, Mul), so raw features go in, then Gemm and the activation per layer, and
// Softmax or Sigmoid at the end. The protobuf is encoded with onnx-proto (ONNX's own onnx.proto compiled
// by protobufjs) rather than by hand: the schema's field numbers then come from ONNX itself.

import onnxProto from 'onnx-proto';
import { writeFileAtomic } from '../system/atomic-file.js';
import { GradpoolError, OptionRangeError, OptionTypeError } from '../errors.js';
import type { ResolvedPreprocessing } from '../data/preprocessing.js';
import { knownKeys } from '../options/validate.js';
import { isSoftmaxLoss, linearViews, paramLayout, type Activation, type ModelConfig } from '../../shared/model.js';

const { onnx } = onnxProto;

/**
 * The ai.onnx opsets the export writes (torch.onnx.export's `opset_version`), each with the IR version of the
 * ONNX release that introduced it (onnx.helper.VERSION_TABLE: 1.8 opset 13 IR 7, 1.9 14/7, 1.10-1.13 15-18/8,
 * 1.14-1.15 19-20/9, 1.16 21/10). A runtime refuses a file whose IR version is newer than it knows, even when
 * it knows the opset, so each opset gets the lowest IR version that can carry it.
 *
 * The operators' forms: Softmax-13 normalises along `axis` alone (before 13 it flattened everything from
 * `axis` on), written as axis 1 of the (N, K) logits; Gemm-13, Tanh-13, Sigmoid-13 are unchanged up to 21;
 * Relu-14, Sub-14 and Mul-14 only add integer types to their -13 forms, so the float graph is the same
 * nodes and attributes at every opset from 13 to 21.
 */
export const ONNX_IR_VERSIONS: Readonly<Record<number, number>> = { 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10 };
export const ONNX_MIN_OPSET = 13;
export const ONNX_MAX_OPSET = 21;
/** The default: ONNX 1.12's (IR 8), which onnxruntime 1.12 and later, and Debian's python3-onnx, read. */
export const ONNX_DEFAULT_OPSET = 17;

/** Options of an ONNX export, as torch.onnx.export names them. */
export interface OnnxExportOptions {
  /** The ai.onnx opset version, from 13 to 21 (default: 17). */
  opsetVersion?: number;
}

const ONNX_OPTION_REGISTRY: { readonly [K in keyof OnnxExportOptions]-?: true } = { opsetVersion: true };
const ONNX_OPTION_NAMES = Object.keys(ONNX_OPTION_REGISTRY);

/** options.opsetVersion, checked; the default when it is not given. */
export function resolveOpsetVersion(options: OnnxExportOptions = {}): number {
  if (typeof options !== 'object' || options === null) throw new OptionTypeError(`options must be an object such as { opsetVersion: ${ONNX_DEFAULT_OPSET} }; got ${String(options)}`);
  knownKeys('options', options, ONNX_OPTION_NAMES, 'an ONNX export option');
  const v = options.opsetVersion ?? ONNX_DEFAULT_OPSET;
  const range = `${ONNX_MIN_OPSET} to ${ONNX_MAX_OPSET}`;
  if (typeof v !== 'number') throw new OptionTypeError(`Unsupported ONNX opset version: options.opsetVersion must be an integer from ${range}; got ${JSON.stringify(v)}`);
  if (!Number.isInteger(v) || v < ONNX_MIN_OPSET || v > ONNX_MAX_OPSET) {
    throw new OptionRangeError(
      `Unsupported ONNX opset version: options.opsetVersion must be an integer from ${range}; got ${v}`,
      `${ONNX_DEFAULT_OPSET} (the default) is read by onnxruntime 1.12 and later; give the highest your runtime supports`,
    );
  }
  return v;
}

/** The graph's input: raw features (N, D), float32. */
export const ONNX_INPUT = 'input';
/** Its outputs: the probabilities (N, K), as trainer.predict() gives them, and the logits (N, K). */
export const ONNX_PROBABILITIES = 'probabilities';
export const ONNX_LOGITS = 'logits';
/** One protobuf message, and so one ONNX file without external data, is limited to 2 GiB. */
const MAX_BYTES = 2 ** 31 - 1;

const ACTIVATION_OPS: Record<Activation, string> = { relu: 'Relu', tanh: 'Tanh', sigmoid: 'Sigmoid' };

/** What an export needs of a model: its config, its parameters (P) and its preprocessing. */
export interface ExportedModel {
  config: Readonly<ModelConfig>;
  params: Float32Array;
  preprocessing: ResolvedPreprocessing | null;
}

/** The ONNX ModelProto bytes of `model`, at options.opsetVersion. */
export function encodeOnnx(model: ExportedModel, options: OnnxExportOptions = {}): Uint8Array {
  const opset = resolveOpsetVersion(options);
  const { config, params, preprocessing } = model;
  const { layers } = config;
  const P = paramLayout(layers).total;
  if (4 * (P + 2 * layers[0]) > MAX_BYTES) {
    throw new GradpoolError(
      `the model's ${P} parameters need ${4 * P} bytes; one ONNX file holds at most 2 GiB (a protobuf message's limit)`,
      'ONNX keeps such weights as external data, which this export does not write',
    );
  }
  if (params.length !== P) throw new RangeError(`params has ${params.length} floats; layers ${JSON.stringify(layers)} need ${P}`);
  const D = layers[0];
  const K = layers[layers.length - 1];
  const initializer: onnxProto.onnx.ITensorProto[] = [];
  const node: onnxProto.onnx.INodeProto[] = [];
  const add = (op: string, inputs: string[], output: string, attribute: onnxProto.onnx.IAttributeProto[] = []): string => {
    node.push({ opType: op, input: inputs, output: [output], name: `${op.toLowerCase()}_${node.length}`, attribute });
    return output;
  };
  const constant = (name: string, dims: number[], values: Float32Array): string => {
    initializer.push({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: littleEndian(values) });
    return name;
  };

  let x = ONNX_INPUT;
  const n = preprocessing?.normalize ?? null;
  if (n !== null) {
    // x' = (x - offset) * scale per feature, as the Trainer applies it (broadcast over the rows).
    x = add('Sub', [x, constant('normalize.offset', [D], n.offset)], 'centred');
    x = add('Mul', [x, constant('normalize.scale', [D], n.scale)], 'normalized');
  }
  const views = linearViews(params, layers);
  views.forEach((v, l) => {
    const i = 2 * l;
    const last = l === views.length - 1;
    const w = constant(`layers.${i}.weight`, [v.OC, v.C], v.weight);
    const b = constant(`layers.${i}.bias`, [v.OC], v.bias);
    // Gemm: x (B, C) times weight (OC, C) transposed, plus bias: nn.Linear.
    x = add('Gemm', [x, w, b], last ? ONNX_LOGITS : `linear_${i}`, [{ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }]);
    if (!last) x = add(ACTIVATION_OPS[config.activation], [x], `${config.activation}_${i + 1}`);
  });
  if (isSoftmaxLoss(config.loss)) {
    add('Softmax', [x], ONNX_PROBABILITIES, [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }]);
  } else {
    add('Sigmoid', [x], ONNX_PROBABILITIES);
  }

  const metadataProps = [
    { key: 'gradpool.config', value: JSON.stringify({ layers, activation: config.activation, loss: config.loss }) },
    ...(['featureNames', 'labelNames', 'classNames'] as const)
      .filter((k) => preprocessing?.[k] != null)
      .map((k) => ({ key: k, value: JSON.stringify(preprocessing?.[k]) })),
  ];
  const message = onnx.ModelProto.create({
    irVersion: ONNX_IR_VERSIONS[opset],
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'gradpool',
    docString: `MLP ${layers.join('-')} (${config.activation}), trained with ${config.loss}: raw features in, ` +
      `${isSoftmaxLoss(config.loss) ? 'softmax' : 'sigmoid'} probabilities out`,
    metadataProps,
    graph: {
      name: 'gradpool',
      node,
      initializer,
      input: [valueInfo(ONNX_INPUT, D)],
      output: [valueInfo(ONNX_PROBABILITIES, K), valueInfo(ONNX_LOGITS, K)],
    },
  });
  return onnx.ModelProto.encode(message).finish();
}

/** Writes encodeOnnx(model, options) to `path` atomically. */
export async function saveOnnx(path: string, model: ExportedModel, options: OnnxExportOptions = {}): Promise<void> {
  await writeFileAtomic(path, encodeOnnx(model, options));
}

/** A float32 (N, width) tensor, N named 'N' (any batch size). */
function valueInfo(name: string, width: number): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: width }] } } },
  };
}

/** ONNX raw_data is little-endian. */
function littleEndian(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i], true);
  return out;
}
