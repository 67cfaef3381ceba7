// kd-edge's own declarations, for compile checks only: NOT NVIDIA's header.
//
// The few CUDA runtime names kd-trt-runner uses, written by the kd-edge project from NVIDIA's public CUDA runtime API
// documentation (types cudaError_t, cudaStream_t, cudaEvent_t, enum cudaMemcpyKind; functions with C linkage). On a
// device the real CUDA headers (/usr/local/cuda/include) are used instead. Only a device build proves the match.
#ifndef KD_COMPAT_CUDA_RUNTIME_API_H
#define KD_COMPAT_CUDA_RUNTIME_API_H

#include <stddef.h>

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t cudaMalloc(void** devPtr, size_t size);
cudaError_t cudaFree(void* devPtr);
#ifdef __cplusplus
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream = 0);
#else
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream);
#endif
cudaError_t cudaStreamCreate(cudaStream_t* pStream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
const char* cudaGetErrorString(cudaError_t error);

#ifdef __cplusplus
}
#endif

#endif
