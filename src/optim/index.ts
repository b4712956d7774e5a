/** Optimizers and learning-rate schedules. */
export { Optimizer, type OptimizerStateDict, type ParamState } from './optimizer.js';
export { Adam, AdamW, type AdamOptions } from './adam.js';
export { SGD, type SGDOptions } from './sgd.js';
export { LRScheduler, StepLR, MultiStepLR, PolynomialLR, CosineAnnealingLR, ConstantLR, WarmupCosineLR } from './schedulers.js';
