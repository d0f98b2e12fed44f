// library.hpp - one loaded copy of a plugin's shared object.
//
// A Library stays mapped until it has been torn down AND no instance of any type it made
// is alive, because those instances' finalizers live in its code. Types hold a
// shared_ptr to their Library; instances count themselves in `live_instances`.
#ifndef REFHOST_LIBRARY_HPP
#define REFHOST_LIBRARY_HPP

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

namespace refhost {

// Always owned by a shared_ptr (types made by the plugin share it).
struct Library : std::enable_shared_from_this<Library> {
    std::string name;         // module name, e.g. "net"
    std::string version;      // the plugin's own version string
    std::string source_path;  // the file the loader found
    std::string copy_path;    // the unique (already unlinked) copy that was dlopen'ed
    void* handle = nullptr;   // from dlopen; NULL once closed
    void (*teardown)(void*) = nullptr;
    void* ctx = nullptr;
    std::atomic<size_t> live_instances{0};
    std::atomic<bool> torn_down{false};

    Library() = default;
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;
    ~Library();  // dlcloses if still open

    void instance_born() { live_instances.fetch_add(1); }
    // Called after an instance's finalizer returned; unmaps a torn-down library when
    // its last instance is gone.
    void instance_gone();
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

}  // namespace refhost

#endif
