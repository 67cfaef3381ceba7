// kd-edge's own declarations, for compile checks only: NOT NVIDIA's header.
//
// The subset of the TensorRT runtime API that kd-trt-runner uses, written by the kd-edge project from NVIDIA's public
// C++ API documentation (TensorRT 8.2 and 10.x class references). On a device the real JetPack headers are used
// instead and this directory is not on the include path. Declarations follow the documented signatures (parameter
// types, const-ness, noexcept, return types) and which TensorRT version has them:
//   - binding API (getNbBindings, getBindingName, bindingIsInput, getBindingDimensions, getBindingDataType,
//     enqueueV2): TensorRT 8.x only (removed in 10.0);
//   - tensor API (getNbIOTensors, getIOTensorName, getTensorShape, getTensorDataType, getTensorIOMode,
//     setTensorAddress, enqueueV3): TensorRT 8.5 and later;
//   - Dims holds int32_t dims before 10.0 (Dims32) and int64_t dims from 10.0 (Dims64).
// So code that uses an API its version lacks fails here as it would on the device. The real classes are
// non-virtual wrappers around an implementation pointer; here they are abstract classes, which callers use the same
// way (through pointers returned by TensorRT, destroyed with delete). Only a real device build proves the match.
#ifndef KD_COMPAT_NV_INFER_RUNTIME_H
#define KD_COMPAT_NV_INFER_RUNTIME_H

#include <cstddef>
#include <cstdint>

#include "NvInferVersion.h"
#include <cuda_runtime_api.h>

#if NV_TENSORRT_MAJOR < 8
#error "kd-edge compat headers describe TensorRT 8.0 and later"
#endif

#define KD_COMPAT_TRT_HAS_TENSOR_API (NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 5))
#define KD_COMPAT_TRT_HAS_BINDING_API (NV_TENSORRT_MAJOR < 10)

// Factory entry points exported by libnvinfer with C linkage.
extern "C" void* createInferRuntime_INTERNAL(void* logger, int32_t version) noexcept;
extern "C" int32_t getInferLibVersion() noexcept;

namespace nvinfer1 {

using AsciiChar = char;

#if NV_TENSORRT_MAJOR >= 10
class Dims64 {
 public:
  static constexpr int32_t MAX_DIMS{8};
  int32_t nbDims;
  int64_t d[MAX_DIMS];
};
using Dims = Dims64;
#else
class Dims32 {
 public:
  static constexpr int32_t MAX_DIMS{8};
  int32_t nbDims;
  int32_t d[MAX_DIMS];
};
using Dims = Dims32;
#endif

enum class DataType : int32_t {
  kFLOAT = 0,
  kHALF = 1,
  kINT8 = 2,
  kINT32 = 3,
  kBOOL = 4,
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 5)
  kUINT8 = 5,
#endif
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
  kFP8 = 6,
#endif
#if NV_TENSORRT_MAJOR >= 10
  kBF16 = 7,
  kINT64 = 8,
  kINT4 = 9,
#endif
};

#if KD_COMPAT_TRT_HAS_TENSOR_API
enum class TensorIOMode : int32_t { kNONE = 0, kINPUT = 1, kOUTPUT = 2 };
#endif

#if NV_TENSORRT_MAJOR >= 10
enum class ExecutionContextAllocationStrategy : int32_t { kSTATIC = 0, kON_PROFILE_CHANGE = 1, kUSER_MANAGED = 2 };
#endif

class ILogger {
 public:
  enum class Severity : int32_t { kINTERNAL_ERROR = 0, kERROR = 1, kWARNING = 2, kINFO = 3, kVERBOSE = 4 };
  ILogger() = default;
  virtual void log(Severity severity, AsciiChar const* msg) noexcept = 0;
  virtual ~ILogger() = default;

 protected:
  ILogger(ILogger const&) = default;
  ILogger(ILogger&&) = default;
  ILogger& operator=(ILogger const&) & = default;
  ILogger& operator=(ILogger&&) & = default;
};

class INoCopy {
 protected:
  INoCopy() = default;
  virtual ~INoCopy() = default;
  INoCopy(INoCopy const&) = delete;
  INoCopy(INoCopy&&) = delete;
  INoCopy& operator=(INoCopy const&) = delete;
  INoCopy& operator=(INoCopy&&) = delete;
};

class IExecutionContext : public INoCopy {
 public:
  ~IExecutionContext() noexcept override = default;
#if KD_COMPAT_TRT_HAS_BINDING_API
  virtual bool enqueueV2(void* const* bindings, cudaStream_t stream, cudaEvent_t* inputConsumed) noexcept = 0;
#endif
#if KD_COMPAT_TRT_HAS_TENSOR_API
  virtual bool setTensorAddress(char const* tensorName, void* data) noexcept = 0;
  virtual bool enqueueV3(cudaStream_t stream) noexcept = 0;
#endif
};

class ICudaEngine : public INoCopy {
 public:
  ~ICudaEngine() noexcept override = default;
#if KD_COMPAT_TRT_HAS_BINDING_API
  virtual int32_t getNbBindings() const noexcept = 0;
  virtual char const* getBindingName(int32_t bindingIndex) const noexcept = 0;
  virtual bool bindingIsInput(int32_t bindingIndex) const noexcept = 0;
  virtual Dims getBindingDimensions(int32_t bindingIndex) const noexcept = 0;
  virtual DataType getBindingDataType(int32_t bindingIndex) const noexcept = 0;
#endif
#if KD_COMPAT_TRT_HAS_TENSOR_API
  virtual int32_t getNbIOTensors() const noexcept = 0;
  virtual char const* getIOTensorName(int32_t index) const noexcept = 0;
  virtual Dims getTensorShape(char const* tensorName) const noexcept = 0;
  virtual DataType getTensorDataType(char const* tensorName) const noexcept = 0;
  virtual TensorIOMode getTensorIOMode(char const* tensorName) const noexcept = 0;
#endif
#if NV_TENSORRT_MAJOR >= 10
  virtual IExecutionContext* createExecutionContext(
      ExecutionContextAllocationStrategy strategy = ExecutionContextAllocationStrategy::kSTATIC) noexcept = 0;
#else
  virtual IExecutionContext* createExecutionContext() noexcept = 0;
#endif
};

#if NV_TENSORRT_MAJOR < 10
class IPluginFactory;
#endif

class IRuntime : public INoCopy {
 public:
  ~IRuntime() noexcept override = default;
  virtual ICudaEngine* deserializeCudaEngine(void const* blob, std::size_t size) noexcept = 0;
#if NV_TENSORRT_MAJOR < 10
  // Deprecated in 8.x, still declared; kept so overload resolution of the two-argument call matches the real header.
  virtual ICudaEngine* deserializeCudaEngine(void const* blob, std::size_t size, IPluginFactory* pluginFactory) noexcept = 0;
#endif
};

namespace {
// As in the real header: an inline factory in an unnamed namespace that passes the header's version to the library.
inline IRuntime* createInferRuntime(ILogger& logger) noexcept {
  return static_cast<IRuntime*>(
      createInferRuntime_INTERNAL(&logger, NV_TENSORRT_MAJOR * 1000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH));
}
}  // namespace

}  // namespace nvinfer1

#endif
