// kd-edge's own declarations, for compile checks only: NOT NVIDIA's header.
//
// Written by the kd-edge project from NVIDIA's public TensorRT API documentation, declaring only what
// kd-trt-runner uses. On a device the real JetPack headers (/usr/include/aarch64-linux-gnu) are used instead and
// this directory is not on the include path. Compiling against these proves that the runner's code is consistent
// with the documented signatures for one API generation; only a build on a device proves it against the real ones.
//
// The version is chosen on the command line: -DKD_COMPAT_TRT_MAJOR=8 -DKD_COMPAT_TRT_MINOR=2 -DKD_COMPAT_TRT_PATCH=1
#ifndef KD_COMPAT_NV_INFER_VERSION_H
#define KD_COMPAT_NV_INFER_VERSION_H

#if !defined(KD_COMPAT_TRT_MAJOR) || !defined(KD_COMPAT_TRT_MINOR)
#error "kd-edge compat headers: define KD_COMPAT_TRT_MAJOR and KD_COMPAT_TRT_MINOR (and optionally KD_COMPAT_TRT_PATCH)"
#endif
#ifndef KD_COMPAT_TRT_PATCH
#define KD_COMPAT_TRT_PATCH 0
#endif

#define NV_TENSORRT_MAJOR KD_COMPAT_TRT_MAJOR
#define NV_TENSORRT_MINOR KD_COMPAT_TRT_MINOR
#define NV_TENSORRT_PATCH KD_COMPAT_TRT_PATCH
#define NV_TENSORRT_BUILD 0

// Marks a compat build, so the runner's hello can say it was not built against a real TensorRT.
#define KD_COMPAT_TENSORRT_HEADERS 1

#endif
