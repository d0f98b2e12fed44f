// state.hpp - everything one Host owns, reachable from the ABI functions (which take no
// host argument) through a file-level pointer.
#ifndef REFHOST_STATE_HPP
#define REFHOST_STATE_HPP

#include <atomic>
#include <map>
#include <utility>
#include <vector>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "library.hpp"
#include "object.hpp"
#include "refhost.hpp"

namespace refhost {
struct TypeObject;
}

namespace refhost::detail {

struct LoadedModule {
    std::shared_ptr<Library> lib;
    Object* module = nullptr;  // owned reference
};

struct HostState {
    HostOptions options;

    // The interpreter lock (see gil.cpp). `gil_owner` lets checking mode catch values
    // touched without the lock, and lets ~Host know whether its caller holds it.
    std::mutex gil;
    std::atomic<std::thread::id> gil_owner{};
    std::atomic<bool> interrupt{false};
    // ABI 1.3: told at once of each interrupt (function, arg); under wakers_mu, which is
    // held while they run, so that a removed one never runs afterwards.
    std::mutex wakers_mu;
    std::vector<std::pair<void (*)(void*), void*>> interrupt_wakers;

    // Singletons and the host's own types.
    Object* none = nullptr;
    Object* true_obj = nullptr;
    Object* false_obj = nullptr;
    TypeObject* object_type = nullptr;
    TypeObject* base_io_type = nullptr;

    std::map<std::string, LoadedModule> modules;  // imported, by name
    std::string copy_dir;                         // private dir for unique plugin copies
    unsigned copy_counter = 0;
};

// The current Host's state, or NULL when no Host exists.
HostState* current_state();
void set_current_state(HostState* state);

// Interpreter lock primitives (gil.cpp).
void gil_lock(HostState* st);
void gil_unlock(HostState* st);
bool gil_held_by_me(const HostState* st);

}  // namespace refhost::detail

#endif
