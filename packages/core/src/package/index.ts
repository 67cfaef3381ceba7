// @kd-edge/core/package: Signed model packages: manifest, Ed25519 keys and signatures, tar, verification, semver.
// Also re-exported by the package root; import this path to load only what it needs.

// Signed model packages
export {
  parseManifest, parseManifestAdapt, checkManifestVersion, defaultModel, manifestRole, MANIFEST_VERSION, MANIFEST_FILE, TASKS, PRECISIONS, OUTPUT_LAYOUTS,
  PACKAGE_ROLES, WEIGHTS_FORMATS, TARGET_RUNTIMES, TARGET_ARCHS, INT8_QUANTIZATIONS,
} from './manifest.js';
export type {
  Manifest, UnsignedManifest, ManifestInput, ManifestOutput, ManifestModel, ManifestFile, ManifestTensorrt, ManifestVal,
  ManifestSignature, ManifestNormalisation, ManifestLetterbox, ManifestWeights, ManifestReplay, Task, Precision, OutputLayout, Dim, PackageRole, WeightsFormat,
  ManifestTarget, ManifestTrtVersion, TargetRuntime, TargetArch, Int8Quantization, ManifestAdapt, ManifestAdaptRecipe,
} from './manifest.js';
export { canonicalJson, canonicalJsonBytes } from './canonical-json.js';
export { generateKeyPair, loadPrivateKey, loadPublicKey, writeKeyPair, keyIdOf, toPublicKey, toPrivateKey } from './keys.js';
export type { KeyPair, KeyInput, KeyPairPaths } from './keys.js';
export { signManifest, verifyManifestSignature, signingPayload } from './sign.js';
export { buildPackage, writeManifest, precisionFromFileName, PACKAGE_LAYOUT } from './build.js';
export type { BuildPackageOptions, BuildModel } from './build.js';
export { verifyPackage } from './verify.js';
export type { VerifyOptions, VerifiedPackage, VerifiedFile } from './verify.js';
export { packDirectory } from './tar-write.js';
export type { PackOptions, PackResult, PackedEntry } from './tar-write.js';
export { readTar, TarReader } from './tar-read.js';
export type { TarEntry, TarFile, TarReadOptions } from './tar-read.js';
export { extractTar } from './tar-extract.js';
export { compareSemver, parseSemver, isSemver } from './semver.js';
export { PackageError } from './errors.js';
export { DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_TOTAL_BYTES, DEFAULT_MAX_MANIFEST_BYTES } from './limits.js';
export type { ExtractOptions } from './tar-extract.js';
export type { PackageErrorCode } from './errors.js';
