import * as tf from '@tensorflow/tfjs-core';
import { register } from 'node:module';
import { gatherNdGradConfig } from './gradients/gather-nd-grad.js';
import { nonDifferentiableGradConfigs } from './gradients/non-differentiable-grads.js';
import { stridedSliceGradConfig } from './gradients/strided-slice-grad.js';

// tfjs-core's Node entry (dist/tf-core.node.js) carries neither the gradient registrations nor the
// chained tensor methods (x.add(), x.sum(), …): @tensorflow/tfjs, which we do not depend on, adds
// them. They exist only as tfjs-core's ES-module files, whose relative imports lack '.js' and so do
// not resolve under Node. This resolve hook adds the extension for files inside tfjs-core/dist.
const RESOLVE_HOOK = `
export async function resolve(specifier, context, next) {
  if (context.parentURL !== undefined && context.parentURL.includes('/@tensorflow/tfjs-core/dist/') &&
      (specifier.startsWith('./') || specifier.startsWith('../')) && !specifier.endsWith('.js')) {
    try { return await next(specifier + '.js', context); }
    catch { return next(specifier + '/index.js', context); }
  }
  return next(specifier, context);
}`;

// Computed so that bundlers leave these deep imports to run time.
const CORE_GRADIENTS = ['@tensorflow/tfjs-core/dist/register_all_gradients.js'].join('');
const CORE_CHAINED_OPS = ['@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js'].join('');

let loading: Promise<void> | undefined;

function gradientsPresent(): boolean {
  return tf.getGradient(tf.Conv2D) !== undefined;
}

function chainedOpsPresent(): boolean {
  return typeof (tf.Tensor.prototype as unknown as { add?: unknown }).add === 'function';
}

async function loadCoreRegistrations(): Promise<void> {
  if (gradientsPresent() && chainedOpsPresent()) return;
  register(`data:text/javascript,${encodeURIComponent(RESOLVE_HOOK)}`);
  // The ES-module copy shares tfjs-core's engine and registries: tfjs keeps them on globalThis.
  if (!gradientsPresent()) await import(CORE_GRADIENTS);
  if (!chainedOpsPresent()) await import(CORE_CHAINED_OPS);
}

/**
 * Makes tf.grads/variableGrads work under Node on every backend: loads tfjs-core's own gradient
 * registrations and chained tensor methods when absent, then adds the gradients tfjs-core 4.22
 * lacks (gatherND, stridedSlice, comparisons). Safe to call more than once.
 */
export function ensureTrainingGradients(): Promise<void> {
  loading ??= loadCoreRegistrations().then(() => {
    for (const config of [gatherNdGradConfig, stridedSliceGradConfig, ...nonDifferentiableGradConfigs]) {
      if (tf.getGradient(config.kernelName) === undefined) tf.registerGradient(config);
    }
  });
  return loading;
}
