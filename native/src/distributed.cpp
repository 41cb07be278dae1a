// Data-parallel communication over libtorch's c10d (what torch.distributed uses): a key-value store
// for the rendezvous (TCPStore served by rank 0, or FileStore on a shared file system), a process group
// (Gloo on CPU; NCCL where libtorch was built with it), and the collectives the trainer needs
// (all-reduce on flat buckets, broadcast, barrier). Every blocking call is bounded by the group's
// timeout, so a dead or missing peer is an error, never a hang.
#include "common.h"
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#ifdef LD_WITH_GLOO
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef LD_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace {
constexpr const char* kNoGloo =
    "this libldtorch was built without c10d/Gloo (its headers were not found: install libgloo-dev, or use a libtorch "
    "that ships include/gloo) and rebuild";
}

#ifdef LD_WITH_GLOO

// libtorch 2.0 split the process group into a front (ProcessGroup) and backends (Backend); the Gloo and
// NCCL classes became backends with the same collective methods.
#if TORCH_VERSION_MAJOR >= 2
using PgBase = c10d::Backend;
#else
using PgBase = c10d::ProcessGroup;
#endif

struct ld_store {
  c10::intrusive_ptr<c10d::Store> store;
  std::string description;  // "the master 10.0.0.1:29500" or "the file store at PATH"
  bool tcp = false;
};

struct ld_process_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<PgBase> pg;
  int rank = 0, world = 1;
  bool tcp = false;
  std::chrono::milliseconds timeout{0};
  // The heartbeat: a counter per rank in the store, bumped every second, so that after a failed
  // collective a survivor can tell which peers stopped.
  std::thread heartbeat;
  std::mutex mutex;
  std::condition_variable stop_cv;
  bool stopping = false;

  ~ld_process_group() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    stop_cv.notify_all();
    if (heartbeat.joinable()) heartbeat.join();
  }
};

namespace {

std::string seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", ms.count() / 1000.0);
  return buf;
}

std::string first_line(const char* what) {
  std::string s(what ? what : "");
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// A disagreement or absence the rendezvous found itself (as opposed to the store failing under it).
struct rendezvous_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string key_world(int r) { return "ldm/world/" + std::to_string(r); }
std::string key_heartbeat(int r) { return "ldm/heartbeat/" + std::to_string(r); }

// Every rank announces its world size; waits (bounded) for all ranks, failing at once on a disagreement.
void rendezvous(c10d::Store& store, int rank, int world, std::chrono::milliseconds timeout) {
  if (store.add("ldm/joined/" + std::to_string(rank), 1) > 1)
    throw rendezvous_error("rank " + std::to_string(rank) + " joined twice: two processes were given the same RANK");
  auto mine = std::to_string(world);
  store.set(key_world(rank), std::vector<uint8_t>(mine.begin(), mine.end()));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<bool> seen(world, false);
  while (true) {
    std::vector<int> missing;
    for (int r = 0; r < world; ++r) {
      if (seen[r]) continue;
      if (!store.check({key_world(r)})) {
        missing.push_back(r);
        continue;
      }
      auto v = store.get(key_world(r));
      std::string theirs(v.begin(), v.end());
      if (theirs != mine)
        throw rendezvous_error("rank " + std::to_string(r) + " was started with WORLD_SIZE " + theirs + ", rank " +
                                 std::to_string(rank) + " with " + std::to_string(world) +
                                 ": every rank must be given the same WORLD_SIZE");
      seen[r] = true;
    }
    if (missing.empty()) return;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string list;
      for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + std::to_string(missing[i]);
      if (missing.size() > 8) list += ", …";
      throw rendezvous_error(std::string(missing.size() == 1 ? "rank " : "ranks ") + list + " of " + std::to_string(world) +
                               " did not arrive within " + seconds(timeout) + " (were they started, with this WORLD_SIZE?)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The Gloo transport device: the interface named by GLOO_SOCKET_IFNAME (as torch.distributed), else the
// address given (loopback for a single machine), else this host's name.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& hostname) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (!hostname.empty()) return c10d::ProcessGroupGloo::createDeviceForHostname(hostname);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

void wait(const c10::intrusive_ptr<c10d::Work>& work) {
  // The collective itself is bounded by the group's timeout (Gloo raises on it and on a closed peer).
  work->wait();
}

// Runs `collective` on groups of same-dtype tensors flattened into buckets of about `bucket_bytes`
// (DDP's gradient buckets), writing the results back.
template <typename F>
void bucketed(std::vector<at::Tensor>& tensors, int64_t bucket_bytes, F collective) {
  size_t i = 0;
  while (i < tensors.size()) {
    std::vector<at::Tensor> group{tensors[i]};
    int64_t bytes = tensors[i].numel() * static_cast<int64_t>(tensors[i].element_size());
    size_t j = i + 1;
    for (; j < tensors.size() && bytes < bucket_bytes; ++j) {
      if (tensors[j].scalar_type() != tensors[i].scalar_type() || tensors[j].device() != tensors[i].device()) break;
      bytes += tensors[j].numel() * static_cast<int64_t>(tensors[j].element_size());
      group.push_back(tensors[j]);
    }
    std::vector<at::Tensor> flat_views;
    for (auto& t : group) flat_views.push_back(t.reshape({-1}));
    auto flat = at::cat(flat_views);
    collective(flat);
    int64_t offset = 0;
    for (auto& t : group) {
      auto n = t.numel();
      t.copy_(flat.narrow(0, offset, n).view_as(t));
      offset += n;
    }
    i = j;
  }
}

void check_group(ld_process_group* g) {
  if (!g || !g->pg) throw std::invalid_argument("the process group was shut down");
}

}  // namespace

extern "C" {

LD_API int ld_distributed_backends(void) {
#ifdef LD_WITH_NCCL
  return 1 | (at::hasCUDA() ? 2 : 0);
#else
  return 1;
#endif
}

LD_API ld_store* ld_tcp_store_new(const char* host, int port, int world_size, int is_master, int64_t timeout_ms) {
  LD_GUARD("tcp_store", nullptr, {
    if (!host || !*host) throw std::invalid_argument("the master address is empty");
    if (port < 1 || port > 65535) throw std::invalid_argument("the master port " + std::to_string(port) + " is not in 1..65535");
    if (world_size < 1) throw std::invalid_argument("the world size must be at least 1");
    if (timeout_ms <= 0) throw std::invalid_argument("the timeout must be positive");
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = is_master != 0;
    opts.numWorkers = static_cast<std::size_t>(world_size);
    opts.waitWorkers = false;  // the rendezvous below checks arrivals and world sizes itself, with better messages
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    std::string where = std::string(host) + ":" + std::to_string(port);
    try {
      auto store = c10::make_intrusive<c10d::TCPStore>(host, opts);
      return new ld_store{store, "the master " + where, true};
    } catch (const std::exception& e) {
      auto why = first_line(e.what());
      if (is_master)
        throw std::runtime_error("cannot serve the rendezvous on " + where + " (is the port in use?): " + why);
      throw std::runtime_error("cannot reach the master " + where + " within " + seconds(opts.timeout) +
                               " (is rank 0 running, and MASTER_ADDR/MASTER_PORT right?): " + why);
    }
  })
}

LD_API ld_store* ld_file_store_new(const char* path, int world_size, int64_t timeout_ms) {
  LD_GUARD("file_store", nullptr, {
    if (!path || !*path) throw std::invalid_argument("the file store path is empty");
    if (world_size < 1) throw std::invalid_argument("the world size must be at least 1");
    if (timeout_ms <= 0) throw std::invalid_argument("the timeout must be positive");
    auto store = c10::make_intrusive<c10d::FileStore>(path, world_size);
    store->setTimeout(std::chrono::milliseconds(timeout_ms));
    return new ld_store{store, std::string("the file store ") + path, false};
  })
}

LD_API void ld_store_free(ld_store* s) { delete s; }

LD_API int ld_store_set(ld_store* s, const char* key, const char* value) {
  LD_STATUS("store_set", {
    std::string v(value ? value : "");
    s->store->set(key, std::vector<uint8_t>(v.begin(), v.end()));
  })
}

LD_API int ld_store_get(ld_store* s, const char* key, char* out, int cap) {
  LD_GUARD("store_get", -1, {
    auto v = s->store->get(key);
    if (static_cast<int>(v.size()) >= cap) throw std::invalid_argument("the value of " + std::string(key) + " is longer than the buffer");
    std::memcpy(out, v.data(), v.size());
    out[v.size()] = 0;
    return static_cast<int>(v.size());
  })
}

LD_API int ld_store_add(ld_store* s, const char* key, int64_t delta, int64_t* out) {
  LD_STATUS("store_add", *out = s->store->add(key, delta))
}

LD_API ld_process_group* ld_process_group_new(ld_store* s, int backend, int rank, int world_size, const char* hostname,
                                             int64_t timeout_ms) {
  LD_GUARD("process_group", nullptr, {
    if (!s) throw std::invalid_argument("null store");
    if (world_size < 1) throw std::invalid_argument("the world size must be at least 1");
    if (rank < 0 || rank >= world_size)
      throw std::invalid_argument("RANK " + std::to_string(rank) + " is outside 0.." + std::to_string(world_size - 1) +
                                  " (WORLD_SIZE " + std::to_string(world_size) + ")");
    if (timeout_ms <= 0) throw std::invalid_argument("the timeout must be positive");
    auto timeout = std::chrono::milliseconds(timeout_ms);
    s->store->setTimeout(timeout);
    try {
      rendezvous(*s->store, rank, world_size, timeout);
    } catch (const rendezvous_error&) {
      throw;
    } catch (const c10::Error& e) {
      throw std::runtime_error("lost " + s->description + " during the rendezvous: " + first_line(e.what_without_backtrace()));
    } catch (const std::exception& e) {  // the socket under the store (std::system_error: "Broken pipe")
      throw std::runtime_error("lost " + s->description + " during the rendezvous: " + first_line(e.what()));
    }
    auto group = std::make_unique<ld_process_group>();
    group->store = s->store;
    group->rank = rank;
    group->world = world_size;
    group->tcp = s->tcp;
    group->timeout = timeout;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("ldm/pg", s->store);
    if (backend == 0) {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(gloo_device(hostname ? hostname : ""));
      opts->threads = 2;
      group->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world_size, opts);
    } else if (backend == 1) {
#ifdef LD_WITH_NCCL
      if (!at::hasCUDA()) throw std::runtime_error("NCCL needs CUDA, which libtorch does not see");
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      group->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world_size, opts);
#else
      throw std::runtime_error("this libtorch was built without NCCL: use the gloo backend");
#endif
    } else {
      throw std::invalid_argument("unknown backend " + std::to_string(backend) + " (0 gloo, 1 nccl)");
    }
    auto* g = group.get();
    g->heartbeat = std::thread([g] {
      while (true) {
        try {
          g->store->add(key_heartbeat(g->rank), 1);
        } catch (...) {
          // The store's host is gone; the next collective reports it.
        }
        std::unique_lock<std::mutex> lock(g->mutex);
        if (g->stop_cv.wait_for(lock, std::chrono::milliseconds(500), [g] { return g->stopping; })) return;
      }
    });
    return group.release();
  })
}

LD_API void ld_process_group_free(ld_process_group* g) { delete g; }

LD_API int ld_all_reduce(ld_process_group* g, ld_tensor** list, int n, int64_t bucket_bytes, int average) {
  LD_STATUS("all_reduce", {
    check_group(g);
    auto tensors = ld::tensors(list, n);
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = g->timeout;
    bucketed(tensors, bucket_bytes, [&](at::Tensor& flat) {
      std::vector<at::Tensor> one{flat};
      wait(g->pg->allreduce(one, opts));
      if (average) flat.div_(g->world);
    });
  })
}

LD_API int ld_broadcast(ld_process_group* g, ld_tensor** list, int n, int root, int64_t bucket_bytes) {
  LD_STATUS("broadcast", {
    check_group(g);
    if (root < 0 || root >= g->world) throw std::invalid_argument("root rank " + std::to_string(root) + " is outside the group");
    auto tensors = ld::tensors(list, n);
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    bucketed(tensors, bucket_bytes, [&](at::Tensor& flat) {
      std::vector<at::Tensor> one{flat};
      wait(g->pg->broadcast(one, opts));
    });
  })
}

LD_API int ld_barrier(ld_process_group* g) {
  LD_STATUS("barrier", {
    check_group(g);
    c10d::BarrierOptions opts;
    opts.timeout = g->timeout;
    wait(g->pg->barrier(opts));
  })
}

// Ranks whose heartbeat did not move over `window_ms` (or rank 0 when the master's store is gone):
// written to `out` (up to cap), their number returned.
LD_API int ld_process_group_lost_ranks(ld_process_group* g, int64_t window_ms, int* out, int cap) {
  LD_GUARD("lost_ranks", -1, {
    check_group(g);
    auto read = [&] {
      std::vector<int64_t> beats(g->world);
      for (int r = 0; r < g->world; ++r) beats[r] = g->store->add(key_heartbeat(r), 0);
      return beats;
    };
    std::vector<int64_t> before;
    try {
      before = read();
    } catch (...) {
      if (!g->tcp) throw;
      if (cap > 0) out[0] = 0;  // the TCP store lives in rank 0's process
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(window_ms));
    std::vector<int64_t> after;
    try {
      after = read();
    } catch (...) {
      if (!g->tcp) throw;
      if (cap > 0) out[0] = 0;
      return 1;
    }
    int count = 0;
    for (int r = 0; r < g->world; ++r)
      if (r != g->rank && after[r] == before[r]) {
        if (count < cap) out[count] = r;
        ++count;
      }
    return count;
  })
}

}  // extern "C"

#else  // no Gloo headers: the entry points exist and say why they cannot work

struct ld_store {};
struct ld_process_group {};

extern "C" {
LD_API int ld_distributed_backends(void) { return 0; }
LD_API ld_store* ld_tcp_store_new(const char*, int, int, int, int64_t) { LD_GUARD("tcp_store", nullptr, { throw std::runtime_error(kNoGloo); }) }
LD_API ld_store* ld_file_store_new(const char*, int, int64_t) { LD_GUARD("file_store", nullptr, { throw std::runtime_error(kNoGloo); }) }
LD_API void ld_store_free(ld_store* s) { delete s; }
LD_API int ld_store_set(ld_store*, const char*, const char*) { LD_STATUS("store_set", throw std::runtime_error(kNoGloo)) }
LD_API int ld_store_get(ld_store*, const char*, char*, int) { LD_GUARD("store_get", -1, { throw std::runtime_error(kNoGloo); }) }
LD_API int ld_store_add(ld_store*, const char*, int64_t, int64_t*) { LD_STATUS("store_add", throw std::runtime_error(kNoGloo)) }
LD_API ld_process_group* ld_process_group_new(ld_store*, int, int, int, const char*, int64_t) {
  LD_GUARD("process_group", nullptr, { throw std::runtime_error(kNoGloo); })
}
LD_API void ld_process_group_free(ld_process_group* g) { delete g; }
LD_API int ld_all_reduce(ld_process_group*, ld_tensor**, int, int64_t, int) { LD_STATUS("all_reduce", throw std::runtime_error(kNoGloo)) }
LD_API int ld_broadcast(ld_process_group*, ld_tensor**, int, int, int64_t) { LD_STATUS("broadcast", throw std::runtime_error(kNoGloo)) }
LD_API int ld_barrier(ld_process_group*) { LD_STATUS("barrier", throw std::runtime_error(kNoGloo)) }
LD_API int ld_process_group_lost_ranks(ld_process_group*, int64_t, int*, int) { LD_GUARD("lost_ranks", -1, { throw std::runtime_error(kNoGloo); }) }
}

#endif
