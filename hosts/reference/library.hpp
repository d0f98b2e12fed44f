// library.hpp - one loaded copy of a plugin's shared object.
//
// A Library stays mapped until it has been torn down, no instance of any type it made is
// alive (their finalizers live in its code) AND no call into its code is in progress
// (after a live reload a thread may still be returning through an old version's code
// while its object already belongs to the new version). Types hold a shared_ptr to their
// Library; instances link themselves into `instances`; calls count themselves with a
// LibraryCall.
#ifndef REFHOST_LIBRARY_HPP
#define REFHOST_LIBRARY_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ksp/plugin_abi.h"

namespace refhost {

class Object;

// The links of a live instance in its library's list (what a live reload hands over).
// Changed only with the interpreter lock held, as instances are born and die with it.
struct InstanceLink {
    InstanceLink* prev = nullptr;
    InstanceLink* next = nullptr;
};

// Always owned by a shared_ptr (types made by the plugin share it).
struct Library : std::enable_shared_from_this<Library> {
    std::string name;         // module name, e.g. "net"
    std::string version;      // the plugin's own version string
    std::string source_path;  // the file the loader found
    std::string copy_path;    // the unique (already unlinked) copy that was dlopen'ed
    void* handle = nullptr;   // from dlopen; NULL once closed
    void (*teardown)(void*) = nullptr;
    void* ctx = nullptr;
    // ABI 1.4: what init returned for live reload; NULL if it cannot hand objects over
    // (or the host presented an older minor).
    const ksp_handover* handover = nullptr;
    std::atomic<size_t> live_instances{0};
    std::atomic<size_t> calls_in_progress{0};
    std::atomic<bool> torn_down{false};
    // A live reload moved its instances on (lock held): no new call may start in its
    // code, and its teardown runs once the calls still returning through it are done
    // (plugin_abi.h: they may use ctx).
    bool superseded = false;
    // Shared by the versions that live reloads link, one taking over from the other:
    // the one serving now is what a type or enum a script kept from any of them resolves
    // to. Lock held.
    struct Lineage {
        std::weak_ptr<Library> serving;
    };
    std::shared_ptr<Lineage> lineage;  // set by a live reload from or to this version
    bool teardown_when_idle = false;
    std::shared_ptr<Library> self_until_torn_down;  // meanwhile nothing else may hold it
    // Live reloads begun with this library as the old version (lock held), so that a
    // KSP_ERR_MOVED with no reload behind it is reported as the plugin bug it is.
    uint64_t handovers_begun = 0;
    InstanceLink instances;  // circular list with this as its head; lock held
    // Types it made (not owned; each removes itself when it dies): a live reload finds
    // the new version's type of a name here. Lock held.
    std::vector<Object*> types;
    // References to this version's types kept after a live reload moved their instances
    // on: calls still returning through this code use them. Dropped when it is unmapped.
    std::vector<Object*> retired_types;

    Library();
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;
    ~Library();  // dlcloses if still open

    void instance_born(InstanceLink* link);
    // Called after an instance's finalizer returned; unmaps a torn-down library when
    // its last instance is gone and no call is in progress.
    void instance_gone(InstanceLink* link);
    // Both with the lock held (every call starts with it and returns to the host with it),
    // so a load and a store count the call: no read-modify-write on every call.
    void call_started() { calls_in_progress.store(calls_in_progress.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
    void call_ended() {
        const size_t left = calls_in_progress.load(std::memory_order_relaxed) - 1;
        calls_in_progress.store(left, std::memory_order_relaxed);
        if (left == 0) became_idle();
    }
    // The last call in progress returned: a deferred teardown runs, then the library is
    // unmapped if nothing else needs it.
    void became_idle();
    // Unmaps the library (and drops its retired types) if it is torn down and neither an
    // instance nor a call needs its code any more.
    void release_if_unused();
    // dlclose now (the caller knows no code of this library can run any more).
    void close();
};

// Copies of plugins currently mapped, process-wide.
size_t open_library_count();
// Called by the loader after a successful dlopen.
void note_library_opened();

namespace detail {
// Inline (constinit: no TLS init wrapper) because every native call sets it.
inline constinit thread_local Library* t_current_library = nullptr;
}  // namespace detail

// The library whose code the host is currently running on this thread (its init or one
// of its functions), so that types it creates are attributed to it. NULL otherwise.
inline Library* current_library() { return detail::t_current_library; }

// Makes `lib` the current library for its lifetime.
class LibraryScope {
public:
    explicit LibraryScope(Library* lib) : saved_(detail::t_current_library) { detail::t_current_library = lib; }
    ~LibraryScope() { detail::t_current_library = saved_; }
    LibraryScope(const LibraryScope&) = delete;
    LibraryScope& operator=(const LibraryScope&) = delete;

private:
    Library* saved_;
};

// A call into `lib`'s code (NULL: host code): current library for its lifetime, and
// counted, so that the code stays mapped until the call has returned.
class LibraryCall {
public:
    explicit LibraryCall(Library* lib) : scope_(lib), lib_(lib) {
        if (lib_) lib_->call_started();
    }
    ~LibraryCall() {
        if (lib_) lib_->call_ended();
    }
    LibraryCall(const LibraryCall&) = delete;
    LibraryCall& operator=(const LibraryCall&) = delete;

private:
    LibraryScope scope_;
    Library* lib_;
};

}  // namespace refhost

#endif
