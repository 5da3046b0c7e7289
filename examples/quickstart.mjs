import { Trainer, loadMnist, splitValidation } from 'gradpool';

const mnist = loadMnist(); // 8,004 + 1,996 real MNIST digits, bundled
const { train, validation } = splitValidation(mnist.train, 0.1, 0); // a tenth held out, to watch the epochs
const trainer = new Trainer({ layers: [784, 128, 10], lr: 0.05, momentum: 0.9, batchSize: 64 });
try {
  const history = await trainer.fit(train, {
    epochs: 5,
    validation,
    verbose: true, // one line per epoch, with the ETA
    earlyStopping: { monitor: 'valLoss', patience: 2, restoreBestWeights: true },
  });
  const test = await trainer.evaluate(mnist.test); // the test split, once, at the end
  console.log(`test accuracy ${(100 * test.accuracy).toFixed(2)}%`);
  const [digit] = await trainer.predictClasses(mnist.test.x.subarray(0, 784));
  console.log('the first test digit is a', mnist.test.y[0], '; predicted', digit);
  await trainer.save('quickstart.safetensors');
  console.log(JSON.stringify(history.at(-1)));
} finally {
  await trainer.close();
}
