// Shared-memory files the agent creates (under --shm-dir) and the runner maps (kd-edge's own code).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kd {

/** One mapped file. */
struct ShmMapping {
  std::string path;
  int fd = -1;
  unsigned char* base = nullptr;
  std::size_t size = 0;
  dev_t dev = 0;
  ino_t ino = 0;
};

/** A region [offset, offset + bytes) of a mapping, named for error messages. */
struct Region {
  std::string name;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
};

/**
 * Maps shared-memory files by path and keeps the last few mapped. Only plain files directly inside `dir` with a
 * name of [A-Za-z0-9._-] (not starting with '.') are accepted; symlinks are refused. A file replaced or resized since it
 * was mapped is mapped again.
 */
class ShmCache {
 public:
  explicit ShmCache(std::string dir, std::size_t keep = 8);
  ~ShmCache();
  ShmCache(const ShmCache&) = delete;
  ShmCache& operator=(const ShmCache&) = delete;

  /** The mapping of `path`, or nullptr with `error` saying why (answered as SHM_INVALID). */
  const ShmMapping* acquire(const std::string& path, std::string& error);

  /** Whether `path` names an allowed file inside the directory (no sub-folders, no "..", no dot files). */
  bool allowed(const std::string& path) const;

 private:
  std::string dir_;
  std::size_t keep_;
  std::vector<ShmMapping> maps_;
  static void release(ShmMapping& m);
};

/**
 * Checks that every region lies inside [0, size) and that no two overlap, without overflow. Returns an empty string,
 * or what is wrong (answered as OUT_OF_BOUNDS).
 */
std::string checkRegions(const std::vector<Region>& regions, std::size_t size);

}  // namespace kd
