import { Trainer, loadMnist } from 'gradpool';

const { train, test } = loadMnist(); // 8,004 + 1,996 real MNIST digits, bundled
const trainer = new Trainer({ layers: [784, 128, 10], lr: 0.05, momentum: 0.9, batchSize: 64 });
try {
  const history = await trainer.fit(train, {
    epochs: 3,
    validation: test,
    onEpoch: (e) => console.log(`epoch ${e.epoch}: test accuracy ${(100 * e.valAccuracy).toFixed(2)}%`),
  });
  const probs = await trainer.predict(test.x.subarray(0, 784)); // (1, 10) class probabilities
  console.log('first test digit is a', test.y[0], '; predicted', probs.indexOf(Math.max(...probs)));
  await trainer.save('quickstart.safetensors');
  console.log(JSON.stringify(history.at(-1)));
} finally {
  await trainer.close();
}
