// Errors
export { KdEdgeError, ConfigError } from './errors.js';

// Detection maths
export type { BoxXYXY, Detection, Annotation } from './detect/types.js';
