// A bounded cache of large CPU blocks in front of libtorch's default CPU allocator (issue 19).
//
// libtorch allocates CPU tensors (and oneDNN its scratch and blocked-layout buffers, through c10's allocator) with
// malloc. glibc maps every block above its mmap threshold (32 MiB once NativeHeap has fixed it) anew and unmaps it on
// free, so each 64–128 MB activation of a 512² VAE decode faulted in every 4 KiB page again: ~1.8 s of a ~8.3 s decode.
// Letting glibc keep such blocks in its heap (MALLOC_MMAP_MAX_=0) removes the faults but fragments the heap (1.8–3.2 GB
// peaks). Here blocks of kMinBytes or more are mapped here, and a freed one is kept in a cache, bounded by a byte limit
// (oldest unmapped first), for the next allocation that it holds with at most half of it to spare. A miss first unmaps
// as many cached bytes as it maps, so the cache never makes the resident memory grow: it keeps what the next
// allocations reuse, not what they would add to (512² decode peak 1,559 MB with it, 1,627 MB without). Smaller blocks
// go to the default allocator unchanged. The cache only reuses memory: no value depends on it (libtorch never assumes
// fresh memory is zeroed). ld_cpu_cache_trim gives every cached block back to the system; while paused (loading
// weights inside NativeHeap.MapWeights, packing a weight) every block of 64 KiB or more is mapped here and unmapped
// when freed, whenever that is, never cached, so freed weight memory returns to the system (glibc's mmap threshold,
// which NativeHeap lowers, did that only where its heap had no free chunk large enough: a 24 MiB weight freed inside
// the scope stayed resident in 1 of 3 runs of the test suite). Thread-safe (one mutex).
#include "common.h"
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

namespace {

constexpr size_t kMinBytes = size_t{8} << 20;  // below this glibc's heap serves blocks well
constexpr size_t kPage = 4096;
// While paused, blocks from this size (NativeHeap's weight threshold) are mapped here and unmapped when freed, marked
// in live_ by this bit of their (page-multiple) size.
constexpr size_t kPausedMinBytes = size_t{64} << 10;
constexpr size_t kUnmapOnFree = 1;

// The bound until the binding sets it (LatentDiffusion.Torch.CpuCache reads LDTORCH_CACHE_MB when it loads the library).
constexpr size_t kDefaultLimit = size_t{1024} << 20;

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(c10::Allocator* fallback) : fallback_(fallback), limit_(kDefaultLimit) {}

  c10::DataPtr allocate(size_t n) const override {
    if (paused_.load() > 0 && n >= kPausedMinBytes) {
      // Paused (weights loading, a weight being packed): a block of its own, unmapped when freed whenever that is.
      // glibc's mmap threshold (NativeHeap) would do the same only where its heap holds no free chunk large enough.
      size_t size = (n + kPage - 1) & ~(kPage - 1);
      void* p = map(size);
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size | kUnmapOnFree;
      live_bytes_ += size;
      return {p, p, &Delete, c10::Device(c10::DeviceType::CPU)};
    }
    if (n < kMinBytes || paused_.load() > 0 || limit_.load() == 0) return fallback_->allocate(n);
    size_t size = (n + kPage - 1) & ~(kPage - 1);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The smallest cached block that holds n, if at most twice its size (its pages are resident already, so a
      // larger block costs no more memory than it holds; the bound keeps small tensors off huge blocks).
      auto it = by_size_.lower_bound(size);
      if (it != by_size_.end() && it->first <= 2 * size) {
        p = it->second->ptr;
        size = it->first;
        cached_bytes_ -= size;
        lru_.erase(it->second);
        by_size_.erase(it);
        ++hits_;
      } else {
        // A miss maps a new block: first give back as many cached bytes (the oldest), so that the cache never makes
        // the resident memory grow beyond what is live plus what it already held.
        ++misses_;
        evict_to(cached_bytes_ > size ? cached_bytes_ - size : 0);
      }
    }
    if (!p) p = map(size);
    std::lock_guard<std::mutex> lock(mutex_);
    live_[p] = size;
    live_bytes_ += size;
    return {p, p, &Delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }

  void set_limit(size_t bytes) {
    limit_.store(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    evict_to(bytes);
  }
  void trim() const {
    std::lock_guard<std::mutex> lock(mutex_);
    evict_to(0);
  }
  void pause(bool on) {
    if (on && paused_.fetch_add(1) == 0) trim();
    if (!on && paused_.load() > 0) paused_.fetch_sub(1);
  }
  void stats(int64_t* out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    out[0] = static_cast<int64_t>(limit_.load());
    out[1] = static_cast<int64_t>(cached_bytes_);
    out[2] = static_cast<int64_t>(live_bytes_);
    out[3] = hits_;
    out[4] = misses_;
  }

  static CachingCpuAllocator& instance();

 private:
  struct Block {
    void* ptr;
    size_t size;
  };

  static void Delete(void* p) { instance().release(p); }

  void release(void* p) {
    if (!p) return;
    size_t size = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(p);
      if (it != live_.end()) {
        size = it->second & ~kUnmapOnFree;
        const bool weight = (it->second & kUnmapOnFree) != 0;
        live_.erase(it);
        live_bytes_ -= size;
        size_t limit = paused_.load() > 0 || weight ? 0 : limit_.load();
        if (size <= limit) {
          evict_to(limit - size);
          lru_.push_back(Block{p, size});
          by_size_.emplace(size, std::prev(lru_.end()));
          cached_bytes_ += size;
          return;
        }
      }
    }
    if (size > 0)
      munmap(p, size);
    else
      fallback_->raw_deleter()(p);  // not ours: a block of the default allocator handed out through raw_allocate
  }

  // Unmaps the oldest cached blocks until at most `bytes` stay cached (called with the mutex held).
  void evict_to(size_t bytes) const {
    while (cached_bytes_ > bytes && !lru_.empty()) {
      Block b = lru_.front();
      auto range = by_size_.equal_range(b.size);
      for (auto it = range.first; it != range.second; ++it) {
        if (it->second == lru_.begin()) {
          by_size_.erase(it);
          break;
        }
      }
      lru_.pop_front();
      cached_bytes_ -= b.size;
      munmap(b.ptr, b.size);
    }
  }

  // A fresh mapping of `size` bytes (a multiple of the page size). Not advised as transparent huge pages: with THP's
  // "madvise" defrag mode every fault of a fresh block then compacted memory for a 2 MiB page, and the 512² decode
  // took 9.1 s instead of 6.6 (measured with the cache at 512 MiB, bench/README.md).
  void* map(size_t size) const {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      trim();  // the cache's memory may be what is missing
      p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED)
        throw c10::Error({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                         "DefaultCPUAllocator: can't allocate memory: you tried to allocate " + std::to_string(size) +
                             " bytes.");
    }
    return p;
  }

  c10::Allocator* fallback_;
  std::atomic<size_t> limit_;
  std::atomic<int> paused_{0};
  mutable std::mutex mutex_;
  mutable std::list<Block> lru_;                                  // cached blocks, oldest first
  mutable std::multimap<size_t, std::list<Block>::iterator> by_size_;
  mutable std::unordered_map<void*, size_t> live_;                // our blocks in use
  mutable size_t cached_bytes_ = 0;
  mutable size_t live_bytes_ = 0;
  mutable int64_t hits_ = 0;
  mutable int64_t misses_ = 0;
};

CachingCpuAllocator& CachingCpuAllocator::instance() {
  // Never destroyed: tensors may be freed during process exit after static destructors ran.
  static auto* allocator = new CachingCpuAllocator(c10::GetDefaultCPUAllocator());
  return *allocator;
}

// Installed when the library loads, above the default allocator's priority, before any tensor of ours exists.
struct Install {
  Install() { c10::SetAllocator(c10::DeviceType::CPU, &CachingCpuAllocator::instance(), 1); }
} install;

}  // namespace

extern "C" {

LD_API int ld_cpu_cache_set_limit(int64_t bytes) {
  LD_GUARD("cpu_cache_set_limit", -1, {
    if (bytes < 0) throw std::invalid_argument("the CPU cache limit must be at least 0 bytes");
    CachingCpuAllocator::instance().set_limit(static_cast<size_t>(bytes));
    return 0;
  })
}

LD_API int ld_cpu_cache_trim(void) { LD_STATUS("cpu_cache_trim", CachingCpuAllocator::instance().trim()) }

LD_API int ld_cpu_cache_pause(int on) { LD_STATUS("cpu_cache_pause", CachingCpuAllocator::instance().pause(on != 0)) }

LD_API int ld_cpu_cache_stats(int64_t* out) {
  LD_GUARD("cpu_cache_stats", -1, {
    if (!out) throw std::invalid_argument("null output");
    CachingCpuAllocator::instance().stats(out);
    return 0;
  })
}

}  // extern "C"
