// kd-trt-runner: serves TensorRT inference to kd-agent over the protocol in docs/trt-runner.md (version 1).
// Frames on stdin/stdout: u32 little-endian body length, then a JSON object of at most 64 KiB. Tensors live in
// shared-memory files the agent creates under --shm-dir. Requests are answered one at a time, in order; anything
// malformed is answered with an error frame and the runner carries on. Logs go to stderr.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "engine.hpp"
#include "json.hpp"
#include "shm.hpp"

namespace {

constexpr int kProtocolVersion = 1;
constexpr std::uint32_t kMaxFrameBytes = 65536;
constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1, as the agent's JSON numbers

using kd::json::Value;
using kd::json::quote;

/** A request that cannot be served: the code and message of the error frame. */
struct Refusal {
  const char* code;
  std::string message;
};

bool readExact(int fd, unsigned char* buf, std::size_t n, bool& eof) {
  std::size_t done = 0;
  eof = false;
  while (done < n) {
    ssize_t r = read(fd, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      eof = true;
      return false;
    }
    done += static_cast<std::size_t>(r);
  }
  return true;
}

bool writeAll(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t w = write(fd, data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<std::size_t>(w);
  }
  return true;
}

std::string errorBody(double id, const char* code, const std::string& message) {
  return "{\"id\":" + std::to_string(static_cast<std::int64_t>(id)) + ",\"type\":\"error\",\"code\":" + quote(code) +
         ",\"message\":" + quote(message) + "}";
}

bool sendFrame(const std::string& body) {
  std::string frame;
  std::uint32_t n = static_cast<std::uint32_t>(body.size());
  frame.reserve(4 + body.size());
  for (int i = 0; i < 4; ++i) frame += static_cast<char>((n >> (8 * i)) & 0xFF);
  frame += body;
  return writeAll(STDOUT_FILENO, frame);
}

// ---- field readers: each throws a Refusal naming the field ----

const Value& member(const Value& obj, const char* key, const std::string& where) {
  const Value* v = obj.get(key);
  if (v == nullptr) throw Refusal{"BAD_REQUEST", where + ": missing '" + key + "'"};
  return *v;
}

std::string stringField(const Value& obj, const char* key, const std::string& where, std::size_t maxLen = 4096) {
  const Value& v = member(obj, key, where);
  if (v.type != Value::Type::String || v.string.empty() || v.string.size() > maxLen || v.string.find('\0') != std::string::npos) {
    throw Refusal{"BAD_REQUEST", where + ": '" + key + "' must be a non-empty string of at most " + std::to_string(maxLen) + " characters"};
  }
  return v.string;
}

bool isUint(const Value& v) {
  return v.type == Value::Type::Number && v.number >= 0 && v.number <= kMaxSafeInteger && v.number == static_cast<double>(static_cast<std::uint64_t>(v.number));
}

std::uint64_t uintField(const Value& obj, const char* key, const std::string& where) {
  const Value& v = member(obj, key, where);
  if (!isUint(v)) throw Refusal{"BAD_REQUEST", where + ": '" + key + "' must be an integer >= 0"};
  return static_cast<std::uint64_t>(v.number);
}

const std::vector<Value>& arrayField(const Value& obj, const char* key, const std::string& where, std::size_t maxLen) {
  const Value& v = member(obj, key, where);
  if (v.type != Value::Type::Array || v.array.size() > maxLen) {
    throw Refusal{"BAD_REQUEST", where + ": '" + key + "' must be an array of at most " + std::to_string(maxLen) + " entries"};
  }
  return v.array;
}

bool validKey(const std::string& k) {
  if (k.empty() || k.size() > 64) return false;
  for (char c : k) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string engineKey(const Value& req, const std::string& where) {
  std::string k = stringField(req, "engine", where, 64);
  if (!validKey(k)) throw Refusal{"BAD_REQUEST", where + ": 'engine' must match ^[A-Za-z0-9._-]{1,64}$"};
  return k;
}

struct InputRegion {
  kd::Region region;
  std::vector<std::int64_t> shape;
};

kd::Region regionOf(const Value& v, const std::string& where) {
  if (v.type != Value::Type::Object) throw Refusal{"BAD_REQUEST", where + " must be an object"};
  kd::Region r;
  r.name = stringField(v, "name", where, 256);
  r.offset = uintField(v, "offset", where);
  r.bytes = uintField(v, "bytes", where);
  return r;
}

std::string shapeJson(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string tensorsJson(const std::vector<kd::TensorInfo>& tensors, bool inputs) {
  std::string s = "[";
  bool first = true;
  for (const auto& t : tensors) {
    if (t.input != inputs) continue;
    s += (first ? "" : ",");
    s += "{\"name\":" + quote(t.name) + ",\"dtype\":" + quote(t.dtype) + ",\"shape\":" + shapeJson(t.shape) + "}";
    first = false;
  }
  return s + "]";
}

class Runner {
 public:
  Runner(const std::string& shmDir, std::size_t maxEngines) : shm_(shmDir), engines_(maxEngines) {}

  /** The id of the last request read (0 when it had none). */
  double lastId() const { return lastId_; }

  /** Answers one request body; sets `stop` after shutdown. Never throws. */
  std::string handle(const unsigned char* data, std::size_t size, bool& stop) {
    double& id = lastId_;
    id = 0;
    try {
      Value req;
      std::string err;
      if (!kd::json::parse(reinterpret_cast<const char*>(data), size, req, err)) {
        return errorBody(0, "BAD_FRAME", "frame body is not JSON: " + err);
      }
      if (req.type != Value::Type::Object) return errorBody(0, "BAD_FRAME", "frame body is not a JSON object");
      const Value* idv = req.get("id");
      if (idv != nullptr && isUint(*idv) && idv->number >= 1) id = idv->number;
      if (id == 0) throw Refusal{"BAD_REQUEST", "'id' must be an integer >= 1"};
      const Value* type = req.get("type");
      std::string t = type != nullptr && type->type == Value::Type::String ? type->string : std::string();
      if (t == "hello") return hello(req, id);
      if (t == "load") return load(req, id);
      if (t == "unload") return unload(req, id);
      if (t == "infer") return infer(req, id);
      if (t == "shutdown") {
        stop = true;
        return "{\"id\":" + std::to_string(static_cast<std::int64_t>(id)) + ",\"type\":\"bye\"}";
      }
      throw Refusal{"UNKNOWN_TYPE", "unknown request type " + (type == nullptr ? std::string("(none)") : quote(t))};
    } catch (const Refusal& r) {
      return errorBody(id, r.code, r.message);
    } catch (const std::bad_alloc&) {
      return errorBody(id, "INTERNAL", "out of memory");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kd-trt-runner: internal error: %s\n", e.what());
      return errorBody(id, "INTERNAL", e.what());
    } catch (...) {
      return errorBody(id, "INTERNAL", "unknown internal error");
    }
  }

 private:
  kd::ShmCache shm_;
  kd::Engines engines_;
  double lastId_ = 0;

  static std::string idJson(double id) { return "{\"id\":" + std::to_string(static_cast<std::int64_t>(id)); }

  std::string hello(const Value& req, double id) {
    const auto& versions = arrayField(req, "versions", "hello", 16);
    bool speaks = false;
    for (const auto& v : versions) {
      if (v.type != Value::Type::Number) throw Refusal{"BAD_REQUEST", "hello: 'versions' must be integers"};
      if (v.number == kProtocolVersion) speaks = true;
    }
    if (!speaks) throw Refusal{"UNSUPPORTED_VERSION", "this runner speaks protocol " + std::to_string(kProtocolVersion)};
    kd::TrtBuildInfo info = kd::trtBuildInfo();
    return idJson(id) + ",\"type\":\"hello\",\"v\":" + std::to_string(kProtocolVersion) +
           ",\"runner\":\"kd-trt-runner\",\"impl\":\"tensorrt\",\"version\":" + quote(info.version) + ",\"api\":" + quote(info.api) +
           ",\"library\":" + quote(info.library) + ",\"compatHeaders\":" + (info.compatHeaders ? "true" : "false") + "}";
  }

  std::string load(const Value& req, double id) {
    std::string key = engineKey(req, "load");
    std::string path = stringField(req, "path", "load");
    kd::Status st = engines_.load(key, path);
    if (!st.ok()) throw Refusal{st.code == "TOO_MANY_ENGINES" ? "TOO_MANY_ENGINES" : "LOAD_FAILED", st.message};
    const auto* tensors = engines_.tensors(key);
    return idJson(id) + ",\"type\":\"loaded\",\"engine\":" + quote(key) + ",\"path\":" + quote(path) +
           ",\"inputs\":" + tensorsJson(*tensors, true) + ",\"outputs\":" + tensorsJson(*tensors, false) + "}";
  }

  std::string unload(const Value& req, double id) {
    std::string key = engineKey(req, "unload");
    kd::Status st = engines_.unload(key);
    if (!st.ok()) throw Refusal{"NO_ENGINE", st.message};
    return idJson(id) + ",\"type\":\"unloaded\",\"engine\":" + quote(key) + "}";
  }

  // Checked in this order, as the stand-in does: fields, shared-memory file, regions, engine, tensors, run.
  std::string infer(const Value& req, double id) {
    std::string key = engineKey(req, "infer");
    std::string shmPath = stringField(req, "shm", "infer");
    std::vector<InputRegion> inputs;
    std::vector<kd::Region> outputs;
    const auto& ins = arrayField(req, "inputs", "infer", 32);
    for (std::size_t i = 0; i < ins.size(); ++i) {
      std::string where = "infer.inputs[" + std::to_string(i) + "]";
      InputRegion in;
      in.region = regionOf(ins[i], where);
      const auto& dims = arrayField(ins[i], "shape", where, 8);
      if (dims.empty()) throw Refusal{"BAD_REQUEST", where + ": 'shape' must be 1 to 8 positive integer dims"};
      for (const auto& d : dims) {
        if (!isUint(d) || d.number < 1 || d.number > 1073741824.0) throw Refusal{"BAD_REQUEST", where + ": 'shape' must be 1 to 8 positive integer dims"};
        in.shape.push_back(static_cast<std::int64_t>(d.number));
      }
      inputs.push_back(std::move(in));
    }
    const auto& outs = arrayField(req, "outputs", "infer", 32);
    for (std::size_t i = 0; i < outs.size(); ++i) outputs.push_back(regionOf(outs[i], "infer.outputs[" + std::to_string(i) + "]"));

    std::string err;
    const kd::ShmMapping* map = shm_.acquire(shmPath, err);
    if (map == nullptr) throw Refusal{"SHM_INVALID", err};
    std::vector<kd::Region> all;
    for (const auto& in : inputs) all.push_back(in.region);
    all.insert(all.end(), outputs.begin(), outputs.end());
    std::string bounds = kd::checkRegions(all, map->size);
    if (!bounds.empty()) throw Refusal{"OUT_OF_BOUNDS", bounds};

    const auto* tensors = engines_.tensors(key);
    if (tensors == nullptr) throw Refusal{"NO_ENGINE", "no engine '" + key + "' is loaded"};
    std::vector<kd::HostTensor> hostIn;
    std::vector<kd::HostTensor> hostOut;
    std::size_t nIn = 0;
    for (const auto& t : *tensors) nIn += t.input ? 1 : 0;
    std::size_t nOut = tensors->size() - nIn;
    if (inputs.size() != nIn) throw Refusal{"SHAPE_MISMATCH", "the engine has " + std::to_string(nIn) + " input(s), the request names " + std::to_string(inputs.size())};
    if (outputs.size() != nOut) throw Refusal{"SHAPE_MISMATCH", "the engine has " + std::to_string(nOut) + " output(s), the request names " + std::to_string(outputs.size())};
    for (const auto& t : *tensors) {
      const kd::Region* found = nullptr;
      int count = 0;
      if (t.input) {
        for (const auto& in : inputs) {
          if (in.region.name != t.name) continue;
          ++count;
          found = &in.region;
          if (in.shape != t.shape) {
            throw Refusal{"SHAPE_MISMATCH", "input '" + t.name + "' has shape " + shapeJson(t.shape) + ", the request says " + shapeJson(in.shape)};
          }
        }
      } else {
        for (const auto& out : outputs) {
          if (out.name != t.name) continue;
          ++count;
          found = &out;
        }
      }
      if (count != 1) throw Refusal{"SHAPE_MISMATCH", std::string(t.input ? "input '" : "output '") + t.name + "' must be named exactly once"};
      if (found->bytes != t.bytes) {
        throw Refusal{"SHAPE_MISMATCH", std::string(t.input ? "input '" : "output '") + t.name + "' needs " + std::to_string(t.bytes) +
                                            " bytes, the region has " + std::to_string(found->bytes)};
      }
      kd::HostTensor h;
      h.tensor = &t;
      h.host = map->base + found->offset;  // in bounds: checkRegions above
      (t.input ? hostIn : hostOut).push_back(h);
    }
    kd::Status st = engines_.infer(key, hostIn, hostOut);
    if (!st.ok()) throw Refusal{st.code == "NO_ENGINE" ? "NO_ENGINE" : "INFER_FAILED", st.message};

    std::string body = idJson(id) + ",\"type\":\"result\",\"engine\":" + quote(key) + ",\"outputs\":[";
    bool first = true;
    for (const auto& h : hostOut) {
      const kd::Region* r = nullptr;
      for (const auto& out : outputs) {
        if (out.name == h.tensor->name) r = &out;
      }
      body += (first ? "" : ",");
      body += "{\"name\":" + quote(r->name) + ",\"offset\":" + std::to_string(r->offset) + ",\"bytes\":" + std::to_string(r->bytes) +
              ",\"shape\":" + shapeJson(h.tensor->shape) + "}";
      first = false;
    }
    return body + "]}";
  }
};

void usage() {
  std::fprintf(stderr,
               "usage: kd-trt-runner [--shm-dir DIR] [--max-engines N]\n"
               "Serves TensorRT engines to kd-agent over stdin/stdout (protocol %d, docs/trt-runner.md).\n",
               kProtocolVersion);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::string shmDir = "/dev/shm";
  std::size_t maxEngines = 4;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      usage();
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "kd-trt-runner: %s needs a value\n", flag.c_str());
      usage();
      return 2;
    }
    std::string value = argv[++i];
    if (flag == "--shm-dir") {
      if (value.empty() || value[0] != '/') {
        std::fprintf(stderr, "kd-trt-runner: --shm-dir must be an absolute path\n");
        return 2;
      }
      shmDir = value;
    } else if (flag == "--max-engines") {
      char* end = nullptr;
      long n = std::strtol(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0' || n < 1 || n > 64) {
        std::fprintf(stderr, "kd-trt-runner: --max-engines must be an integer from 1 to 64\n");
        return 2;
      }
      maxEngines = static_cast<std::size_t>(n);
    } else {
      std::fprintf(stderr, "kd-trt-runner: unknown option %s\n", flag.c_str());
      usage();
      return 2;
    }
  }

  kd::TrtBuildInfo info = kd::trtBuildInfo();
  std::fprintf(stderr, "kd-trt-runner: started (protocol %d, TensorRT %s headers%s, %s API, library %s, shm %s)\n", kProtocolVersion,
               info.version.c_str(), info.compatHeaders ? " [kd-edge compat, no TensorRT]" : "", info.api.c_str(), info.library.c_str(),
               shmDir.c_str());
  Runner runner(shmDir, maxEngines);
  std::vector<unsigned char> body;
  std::vector<unsigned char> scratch(65536);
  for (;;) {
    unsigned char header[4];
    bool eof = false;
    if (!readExact(STDIN_FILENO, header, 4, eof)) break;
    std::uint32_t length = static_cast<std::uint32_t>(header[0]) | (static_cast<std::uint32_t>(header[1]) << 8) |
                           (static_cast<std::uint32_t>(header[2]) << 16) | (static_cast<std::uint32_t>(header[3]) << 24);
    if (length > kMaxFrameBytes) {
      if (!sendFrame(errorBody(0, "BAD_FRAME", "frame of " + std::to_string(length) + " bytes exceeds " + std::to_string(kMaxFrameBytes) + "; skipped"))) break;
      // Skip the body as it arrives, so the next frame is read from its own start.
      std::uint64_t left = length;
      while (left > 0) {
        std::size_t n = left < scratch.size() ? static_cast<std::size_t>(left) : scratch.size();
        if (!readExact(STDIN_FILENO, scratch.data(), n, eof)) break;
        left -= n;
      }
      if (eof) break;
      continue;
    }
    body.resize(length);
    if (length > 0 && !readExact(STDIN_FILENO, body.data(), length, eof)) break;
    bool stop = false;
    std::string reply = runner.handle(body.data(), body.size(), stop);
    if (reply.size() > kMaxFrameBytes) reply = errorBody(runner.lastId(), "INTERNAL", "reply larger than a frame");
    if (!sendFrame(reply)) break;
    if (stop) break;
  }
  std::fprintf(stderr, "kd-trt-runner: exiting\n");
  return 0;
}
