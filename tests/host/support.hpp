// support.hpp - helpers for the reference host's tests: plugin directories made per
// test, fixture paths, resource counting and a death-test runner.
#ifndef REFHOST_TESTS_SUPPORT_HPP
#define REFHOST_TESTS_SUPPORT_HPP

#include <functional>
#include <cstdint>
#include <string>

#include "refhost.hpp"

namespace support {

// The built fixture for `name` (e.g. "fixture_ok" -> .../ksp_fixture_ok.so).
std::string fixture_so(const std::string& name);
// A file in the fixtures source directory (e.g. "ksp_garbage.so").
std::string fixture_source(const std::string& file);

// A private temporary directory, removed with everything in it.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    // Copies `file` to DIR/ksp_NAME.so, or DIR/NAME/ksp_NAME.so when nested; returns it.
    std::string install(const std::string& file, const std::string& name, bool nested = false) const;

private:
    std::string path_;
};

void copy_file(const std::string& from, const std::string& to);
// Writes the first `bytes` bytes of `from` to `to`.
void copy_truncated(const std::string& from, const std::string& to, size_t bytes);
// Writes `from`'s size to `to`, zeros after its first `bytes` bytes: a linker that sized
// its output first and has not written the rest.
void copy_written_up_to(const std::string& from, const std::string& to, size_t bytes);
size_t file_size(const std::string& path);
// Overwrites e_machine in the ELF header of `path` (a native shared object), as if it
// had been built for another CPU.
void patch_elf_machine(const std::string& path, uint16_t machine);
// e_machine of this process's own executable.
uint16_t native_machine();

// Descriptors, threads and mappings are counted by tests/support/process_census.hpp,
// shared with every suite.

// Options for a test host: only `dir`, no KSPATH, checking mode on.
refhost::HostOptions options_for(const std::string& dir);

// Checks, when it goes out of scope, that the test left no fd, thread, object, mapped
// plugin copy or error behind. Declare it before the Host.
class LeakGuard {
public:
    LeakGuard();
    ~LeakGuard();

private:
    int fds_, threads_;
};

struct ChildResult {
    bool aborted = false;  // killed by SIGABRT
    int exit_code = -1;    // when it exited normally
    std::string err;       // what it wrote to stderr
};
// Runs `body` in a forked child with stderr captured (a death test).
ChildResult run_in_child(const std::function<void()>& body);

// The message of the ScriptError `f` raises ("" if none), and its kind in *kind.
inline std::string error_of(const std::function<void()>& f, ksp_error_kind* kind = nullptr) {
    try {
        f();
    } catch (const refhost::ScriptError& e) {
        if (kind) *kind = e.kind;
        return e.what();
    }
    return "";
}

// Takes the error a table entry raised on this thread: its message ("" if none was
// raised) and its kind in *kind.
std::string take_raised(ksp_error_kind* kind = nullptr);

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace support

#endif
