// kd-edge's link stub, for compile checks only: NOT part of TensorRT or CUDA.
//
// Defines the free functions that kd-trt-runner calls from libnvinfer and libcudart, so the compile check links a
// real executable on a machine without TensorRT or CUDA. Nothing here runs a model: createInferRuntime_INTERNAL
// returns null and every CUDA call fails, so a stub-linked runner answers hello and every protocol error, and answers
// load with LOAD_FAILED. Never linked into a device build (the Makefile links the real libraries).
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

extern "C" void* createInferRuntime_INTERNAL(void* /*logger*/, int32_t /*version*/) noexcept { return nullptr; }

extern "C" int32_t getInferLibVersion() noexcept {
#if NV_TENSORRT_MAJOR >= 10
  return NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
#else
  return NV_TENSORRT_MAJOR * 1000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
#endif
}

extern "C" {
cudaError_t cudaMalloc(void** devPtr, size_t /*size*/) {
  if (devPtr != nullptr) *devPtr = nullptr;
  return cudaErrorNoDevice;
}
cudaError_t cudaFree(void* /*devPtr*/) { return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void* /*dst*/, const void* /*src*/, size_t /*count*/, enum cudaMemcpyKind /*kind*/,
                            cudaStream_t /*stream*/) {
  return cudaErrorNoDevice;
}
cudaError_t cudaStreamCreate(cudaStream_t* pStream) {
  if (pStream != nullptr) *pStream = nullptr;
  return cudaErrorNoDevice;
}
cudaError_t cudaStreamSynchronize(cudaStream_t /*stream*/) { return cudaErrorNoDevice; }
cudaError_t cudaStreamDestroy(cudaStream_t /*stream*/) { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t error) {
  return error == cudaSuccess ? "no error" : "no CUDA device (kd-edge link stub: compile check only)";
}
}
