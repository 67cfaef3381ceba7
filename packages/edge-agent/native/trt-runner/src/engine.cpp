#include "engine.hpp"

#include <NvInferRuntime.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <fstream>
#include <limits>

// TensorRT 8.5 introduced the tensor-name API (enqueueV3); 10.0 removed the binding API (enqueueV2).
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 5)
#define KD_TRT_TENSOR_API 1
#else
#define KD_TRT_TENSOR_API 0
#endif

#if NV_TENSORRT_MAJOR < 8
#error "kd-trt-runner needs TensorRT 8.0 or later (objects are destroyed with delete)"
#endif

namespace kd {

namespace {

constexpr std::size_t kMaxEngineFileBytes = std::size_t{2} << 30;  // 2 GiB
constexpr std::uint64_t kMaxTensorBytes = std::uint64_t{1} << 34;   // 16 GiB: far above any model we serve

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override {
    if (msg == nullptr) return;
    if (severity <= Severity::kWARNING) {
      std::fprintf(stderr, "kd-trt-runner: TensorRT %s: %s\n", severity <= Severity::kERROR ? "error" : "warning", msg);
    }
    if (severity <= Severity::kERROR) lastError = msg;
  }
  std::string lastError;
};

std::string cudaMessage(const char* what, cudaError_t err) {
  const char* text = cudaGetErrorString(err);
  return std::string(what) + ": " + (text != nullptr ? text : "unknown CUDA error") + " (" + std::to_string(static_cast<int>(err)) + ")";
}

/** Protocol name and element size of a TensorRT data type; false for types the protocol does not carry. */
bool dtypeOf(nvinfer1::DataType t, std::string& name, std::size_t& size) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: name = "float32"; size = 4; return true;
    case nvinfer1::DataType::kHALF: name = "float16"; size = 2; return true;
    case nvinfer1::DataType::kINT8: name = "int8"; size = 1; return true;
    case nvinfer1::DataType::kINT32: name = "int32"; size = 4; return true;
    case nvinfer1::DataType::kBOOL: name = "bool"; size = 1; return true;
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 5)
    case nvinfer1::DataType::kUINT8: name = "uint8"; size = 1; return true;
#endif
#if NV_TENSORRT_MAJOR >= 10
    case nvinfer1::DataType::kINT64: name = "int64"; size = 8; return true;
#endif
    default: return false;
  }
}

/** Fills shape and bytes from dims; false (with why) for a dynamic or oversized shape. */
bool shapeOf(const nvinfer1::Dims& dims, TensorInfo& t, std::size_t elemSize, std::string& why) {
  if (dims.nbDims < 1 || dims.nbDims > nvinfer1::Dims::MAX_DIMS) {
    why = "has " + std::to_string(dims.nbDims) + " dims (1 to 8 are supported)";
    return false;
  }
  std::uint64_t bytes = elemSize;
  for (std::int32_t i = 0; i < dims.nbDims; ++i) {
    std::int64_t d = static_cast<std::int64_t>(dims.d[i]);
    t.shape.push_back(d);
    if (d < 1) {
      why = "has a dynamic shape (dim " + std::to_string(i) + " is " + std::to_string(d) + "); protocol v1 needs static shapes";
      return false;
    }
    if (static_cast<std::uint64_t>(d) > kMaxTensorBytes / bytes) {
      why = "is larger than 16 GiB";
      return false;
    }
    bytes *= static_cast<std::uint64_t>(d);
  }
  t.bytes = static_cast<std::size_t>(bytes);
  return true;
}

std::string versionString(std::int64_t major, std::int64_t minor, std::int64_t patch) {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace

struct LoadedEngine {
  std::string path;
  nvinfer1::ICudaEngine* engine = nullptr;
  nvinfer1::IExecutionContext* context = nullptr;
  std::vector<TensorInfo> tensors;
  std::vector<void*> bindings;  // binding API: device pointers by binding index

  ~LoadedEngine() {
    delete context;
    delete engine;
    for (auto& t : tensors) {
      if (t.device != nullptr) cudaFree(t.device);
    }
  }
};

struct Engines::Runtime {
  Logger logger;
  nvinfer1::IRuntime* runtime = nullptr;
  cudaStream_t stream = nullptr;
  bool streamMade = false;
  ~Runtime() {
    if (streamMade) cudaStreamDestroy(stream);
    delete runtime;
  }
};

TrtBuildInfo trtBuildInfo() {
  TrtBuildInfo info;
  info.version = versionString(NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR, NV_TENSORRT_PATCH);
  info.api = KD_TRT_TENSOR_API ? "tensors" : "bindings";
  // getInferLibVersion is MAJOR*1000+MINOR*100+PATCH up to 8.x and MAJOR*10000+MINOR*100+PATCH from 10.0.
  std::int64_t v = getInferLibVersion();
  if (v >= 100000) info.library = versionString(v / 10000, (v / 100) % 100, v % 100);
  else info.library = versionString(v / 1000, (v / 100) % 10, v % 100);
#ifdef KD_COMPAT_TENSORRT_HEADERS
  info.compatHeaders = true;
#endif
  return info;
}

Engines::Engines(std::size_t maxEngines) : max_(maxEngines) {}

Engines::~Engines() {
  engines_.clear();  // contexts and engines before the runtime and the stream
  rt_.reset();
}

Status Engines::ensureRuntime() {
  if (!rt_) rt_.reset(new Runtime());
  if (rt_->runtime == nullptr) {
    rt_->runtime = nvinfer1::createInferRuntime(rt_->logger);
    if (rt_->runtime == nullptr) {
      return Status::error("LOAD_FAILED", "createInferRuntime failed: TensorRT is not usable here" +
                                              (rt_->logger.lastError.empty() ? std::string() : " (" + rt_->logger.lastError + ")"));
    }
  }
  if (!rt_->streamMade) {
    cudaError_t err = cudaStreamCreate(&rt_->stream);
    if (err != cudaSuccess) return Status::error("LOAD_FAILED", cudaMessage("cudaStreamCreate", err));
    rt_->streamMade = true;
  }
  return Status();
}

Status Engines::load(const std::string& key, const std::string& path) {
  if (engines_.find(key) == engines_.end() && engines_.size() >= max_) {
    return Status::error("TOO_MANY_ENGINES", std::to_string(engines_.size()) + " engines are loaded (the most is " +
                                                 std::to_string(max_) + "); unload one first");
  }
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Status::error("LOAD_FAILED", "cannot open engine file " + path);
  std::streamoff end = in.tellg();
  if (end <= 0 || static_cast<std::uint64_t>(end) > kMaxEngineFileBytes) {
    return Status::error("LOAD_FAILED", "engine file " + path + " is empty, unreadable or larger than 2 GiB");
  }
  std::vector<char> blob(static_cast<std::size_t>(end));
  in.seekg(0);
  if (!in.read(blob.data(), static_cast<std::streamsize>(blob.size()))) {
    return Status::error("LOAD_FAILED", "cannot read engine file " + path);
  }
  Status st = ensureRuntime();
  if (!st.ok()) return st;

  rt_->logger.lastError.clear();
  std::unique_ptr<LoadedEngine> e(new LoadedEngine());
  e->path = path;
  e->engine = rt_->runtime->deserializeCudaEngine(blob.data(), blob.size());
  if (e->engine == nullptr) {
    return Status::error("LOAD_FAILED", "TensorRT could not deserialize " + path +
                                            " (built for another TensorRT version or GPU?)" +
                                            (rt_->logger.lastError.empty() ? std::string() : ": " + rt_->logger.lastError));
  }

#if KD_TRT_TENSOR_API
  const std::int32_t n = e->engine->getNbIOTensors();
#else
  const std::int32_t n = e->engine->getNbBindings();
  e->bindings.assign(n > 0 ? static_cast<std::size_t>(n) : 0, nullptr);
#endif
  if (n < 2) return Status::error("LOAD_FAILED", path + " has " + std::to_string(n) + " inputs and outputs together");
  for (std::int32_t i = 0; i < n; ++i) {
    TensorInfo t;
    t.binding = i;
#if KD_TRT_TENSOR_API
    const char* name = e->engine->getIOTensorName(i);
    if (name == nullptr) return Status::error("LOAD_FAILED", "tensor " + std::to_string(i) + " has no name");
    t.name = name;
    nvinfer1::TensorIOMode mode = e->engine->getTensorIOMode(name);
    if (mode == nvinfer1::TensorIOMode::kNONE) continue;
    t.input = mode == nvinfer1::TensorIOMode::kINPUT;
    nvinfer1::Dims dims = e->engine->getTensorShape(name);
    nvinfer1::DataType type = e->engine->getTensorDataType(name);
#else
    const char* name = e->engine->getBindingName(i);
    if (name == nullptr) return Status::error("LOAD_FAILED", "binding " + std::to_string(i) + " has no name");
    t.name = name;
    t.input = e->engine->bindingIsInput(i);
    nvinfer1::Dims dims = e->engine->getBindingDimensions(i);
    nvinfer1::DataType type = e->engine->getBindingDataType(i);
#endif
    std::size_t elem = 0;
    if (!dtypeOf(type, t.dtype, elem)) {
      return Status::error("LOAD_FAILED", "tensor '" + t.name + "' has a data type (" + std::to_string(static_cast<int>(type)) +
                                              ") the protocol does not carry");
    }
    std::string why;
    if (!shapeOf(dims, t, elem, why)) return Status::error("LOAD_FAILED", "tensor '" + t.name + "' " + why);
    e->tensors.push_back(std::move(t));
  }

  e->context = e->engine->createExecutionContext();
  if (e->context == nullptr) return Status::error("LOAD_FAILED", "TensorRT could not create an execution context for " + path);
  for (auto& t : e->tensors) {
    cudaError_t err = cudaMalloc(&t.device, t.bytes);
    if (err != cudaSuccess) {
      t.device = nullptr;
      return Status::error("LOAD_FAILED", cudaMessage(("cudaMalloc for '" + t.name + "'").c_str(), err));
    }
#if KD_TRT_TENSOR_API
    if (!e->context->setTensorAddress(t.name.c_str(), t.device)) {
      return Status::error("LOAD_FAILED", "setTensorAddress refused tensor '" + t.name + "'");
    }
#else
    e->bindings[static_cast<std::size_t>(t.binding)] = t.device;
#endif
  }
  // Only now is the old engine under this key replaced (and freed by unique_ptr).
  engines_[key] = std::move(e);
  std::fprintf(stderr, "kd-trt-runner: loaded %s as '%s'\n", path.c_str(), key.c_str());
  return Status();
}

Status Engines::unload(const std::string& key) {
  auto it = engines_.find(key);
  if (it == engines_.end()) return Status::error("NO_ENGINE", "no engine '" + key + "' is loaded");
  engines_.erase(it);
  return Status();
}

const std::vector<TensorInfo>* Engines::tensors(const std::string& key) const {
  auto it = engines_.find(key);
  return it == engines_.end() ? nullptr : &it->second->tensors;
}

Status Engines::infer(const std::string& key, const std::vector<HostTensor>& inputs, const std::vector<HostTensor>& outputs) {
  auto it = engines_.find(key);
  if (it == engines_.end() || !rt_) return Status::error("NO_ENGINE", "no engine '" + key + "' is loaded");
  LoadedEngine& e = *it->second;
  cudaStream_t stream = rt_->stream;
  for (const auto& in : inputs) {
    cudaError_t err = cudaMemcpyAsync(in.tensor->device, in.host, in.tensor->bytes, cudaMemcpyHostToDevice, stream);
    if (err != cudaSuccess) return Status::error("INFER_FAILED", cudaMessage("copy to the GPU", err));
  }
#if KD_TRT_TENSOR_API
  bool enqueued = e.context->enqueueV3(stream);
#else
  bool enqueued = e.context->enqueueV2(e.bindings.data(), stream, nullptr);
#endif
  if (!enqueued) {
    cudaStreamSynchronize(stream);
    return Status::error("INFER_FAILED", "TensorRT could not enqueue the inference" +
                                             (rt_->logger.lastError.empty() ? std::string() : ": " + rt_->logger.lastError));
  }
  for (const auto& out : outputs) {
    cudaError_t err = cudaMemcpyAsync(out.host, out.tensor->device, out.tensor->bytes, cudaMemcpyDeviceToHost, stream);
    if (err != cudaSuccess) {
      cudaStreamSynchronize(stream);
      return Status::error("INFER_FAILED", cudaMessage("copy from the GPU", err));
    }
  }
  cudaError_t err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) return Status::error("INFER_FAILED", cudaMessage("cudaStreamSynchronize", err));
  return Status();
}

}  // namespace kd
