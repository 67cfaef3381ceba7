#include "shm.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace kd {

namespace {
bool nameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}
}  // namespace

ShmCache::ShmCache(std::string dir, std::size_t keep) : dir_(std::move(dir)), keep_(keep == 0 ? 1 : keep) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

ShmCache::~ShmCache() {
  for (auto& m : maps_) release(m);
}

void ShmCache::release(ShmMapping& m) {
  if (m.base != nullptr) munmap(m.base, m.size);
  if (m.fd >= 0) close(m.fd);
  m.base = nullptr;
  m.fd = -1;
}

bool ShmCache::allowed(const std::string& path) const {
  if (path.size() <= dir_.size() + 1 || path.compare(0, dir_.size(), dir_) != 0 || path[dir_.size()] != '/') return false;
  std::string name = path.substr(dir_.size() + 1);
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), nameChar);
}

const ShmMapping* ShmCache::acquire(const std::string& path, std::string& error) {
  if (!allowed(path)) {
    error = "shared-memory path \"" + path + "\" is not a plain file name inside " + dir_;
    return nullptr;
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    error = "cannot open shared-memory file " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    error = "shared-memory file " + path + " is not a regular file";
    return nullptr;
  }
  for (auto it = maps_.begin(); it != maps_.end(); ++it) {
    if (it->path != path) continue;
    if (it->dev == st.st_dev && it->ino == st.st_ino && it->size == static_cast<std::size_t>(st.st_size)) return &*it;
    release(*it);
    maps_.erase(it);
    break;
  }
  if (st.st_size <= 0) {
    error = "shared-memory file " + path + " is empty";
    return nullptr;
  }
  int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open shared-memory file " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  struct stat fst {};
  // The file opened must be the one checked (not swapped in between) and still a regular file.
  if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino || fst.st_size <= 0) {
    close(fd);
    error = "shared-memory file " + path + " changed while it was opened";
    return nullptr;
  }
  std::size_t size = static_cast<std::size_t>(fst.st_size);
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    error = "cannot map shared-memory file " + path + ": " + std::strerror(errno);
    close(fd);
    return nullptr;
  }
  if (maps_.size() >= keep_) {
    release(maps_.front());
    maps_.erase(maps_.begin());
  }
  ShmMapping m;
  m.path = path;
  m.fd = fd;
  m.base = static_cast<unsigned char*>(base);
  m.size = size;
  m.dev = fst.st_dev;
  m.ino = fst.st_ino;
  maps_.push_back(std::move(m));
  return &maps_.back();
}

std::string checkRegions(const std::vector<Region>& regions, std::size_t size) {
  const std::uint64_t limit = static_cast<std::uint64_t>(size);
  for (const auto& r : regions) {
    // offset + bytes is never computed: it could wrap.
    if (r.bytes == 0 || r.offset > limit || r.bytes > limit - r.offset) {
      return "region '" + r.name + "' [" + std::to_string(r.offset) + ", +" + std::to_string(r.bytes) + ") is outside the " +
             std::to_string(size) + "-byte shared-memory file";
    }
  }
  std::vector<const Region*> sorted;
  sorted.reserve(regions.size());
  for (const auto& r : regions) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](const Region* a, const Region* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i]->offset < sorted[i - 1]->offset + sorted[i - 1]->bytes) {
      return "regions '" + sorted[i - 1]->name + "' and '" + sorted[i]->name + "' overlap";
    }
  }
  return std::string();
}

}  // namespace kd
