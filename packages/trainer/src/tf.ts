/**
 * TensorFlow.js for every trainer module. `@tensorflow/tfjs` registers the gradients and the chained
 * tensor methods that training needs (`@tensorflow/tfjs-core` alone registers neither under Node),
 * and it is the package the native backends (`@tensorflow/tfjs-node[-gpu]`) extend.
 */
export * from '@tensorflow/tfjs';
