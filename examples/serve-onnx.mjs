import * as ort from 'onnxruntime-node';

const session = await ort.InferenceSession.create('model.onnx');
const x = new Float32Array(2 * 784).fill(0.5); // two rows of raw features, as trainer.predict takes them
const { probabilities } = await session.run({ input: new ort.Tensor('float32', x, [2, 784]) });
console.log(probabilities.dims, Array.from(probabilities.data)); // [2, 10]: trainer.predict(x)'s values
