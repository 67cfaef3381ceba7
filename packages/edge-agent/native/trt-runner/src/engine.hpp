// Engines loaded with TensorRT: one source for the binding API (TensorRT 8.0-8.4, enqueueV2) and the tensor API
// (8.5 and later, enqueueV3), chosen by NV_TENSORRT_MAJOR/MINOR (kd-edge's own code).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <string>
#include <vector>

namespace kd {

/** One engine input or output. */
struct TensorInfo {
  std::string name;
  std::string dtype;  // protocol name: float32, float16, int8, uint8, int32, int64, bool
  std::vector<std::int64_t> shape;
  std::size_t bytes = 0;
  bool input = false;
  std::int32_t binding = -1;  // binding index (binding API) or I/O tensor index (tensor API)
  void* device = nullptr;
};

/** A host buffer for one tensor of an inference, already bounds-checked against its shared-memory file. */
struct HostTensor {
  const TensorInfo* tensor = nullptr;
  unsigned char* host = nullptr;
};

struct LoadedEngine;

/** The result of an operation: empty `code` on success, else a protocol error code and message. */
struct Status {
  std::string code;
  std::string message;
  bool ok() const { return code.empty(); }
  static Status error(const char* code, std::string message) { return Status{code, std::move(message)}; }
};

/** What the runner says about the TensorRT it was built for. */
struct TrtBuildInfo {
  std::string version;   // from NvInferVersion.h, e.g. "8.2.1"
  std::string api;       // "bindings" or "tensors"
  std::string library;   // getInferLibVersion() decoded, e.g. "8.2.1"
  bool compatHeaders = false;
};

TrtBuildInfo trtBuildInfo();

/** The engines of one runner, by key, with one TensorRT runtime and one CUDA stream made at the first load. */
class Engines {
 public:
  explicit Engines(std::size_t maxEngines);
  ~Engines();
  Engines(const Engines&) = delete;
  Engines& operator=(const Engines&) = delete;

  /** Loads `path` under `key`; the engine already under `key` stays if this fails and is freed if it succeeds. */
  Status load(const std::string& key, const std::string& path);
  Status unload(const std::string& key);
  /** The tensors of the engine under `key`, or nullptr. */
  const std::vector<TensorInfo>* tensors(const std::string& key) const;
  /** Copies inputs to the GPU, runs, copies outputs back, and waits. Host pointers were checked by the caller. */
  Status infer(const std::string& key, const std::vector<HostTensor>& inputs, const std::vector<HostTensor>& outputs);

 private:
  std::size_t max_;
  std::map<std::string, std::unique_ptr<LoadedEngine>> engines_;
  struct Runtime;
  std::unique_ptr<Runtime> rt_;
  Status ensureRuntime();
};

}  // namespace kd
