// refhost.hpp - the reference host's C++ API.
//
// The reference host implements the plugin ABI (ksp/plugin_abi.h) with a small object
// model and a module loader, so a plugin such as ksp_net.so can be imported and driven
// exactly as an interpreter would: by tests, the `ksphost` CLI, demos and benchmarks.
//
// Rules of use:
//   - One Host exists at a time in a process (the ABI's functions take no host argument,
//     so they reach the host through a file-level pointer).
//   - Every thread that touches values holds the interpreter lock: `refhost::Gil g(host);`.
//     All Host methods below except live_objects(), loaded_library_count(),
//     request_interrupt(), interrupt_wakers() and table() assume the caller holds it.
//   - Failures throw refhost::ScriptError carrying the host's error kind.
#ifndef REFHOST_REFHOST_HPP
#define REFHOST_REFHOST_HPP

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ksp/plugin_abi.h"

namespace refhost {

struct HostOptions {
    std::vector<std::string> plugin_dirs;  // searched first, in order
    bool use_kspath = true;                // then each entry of $KSPATH (colon-separated)
    bool checking = false;                 // debug mode: catches double release, stale handles
    // The ABI minor presented to plugins: an older one (0, 1, ...) hands out the table a
    // host of that version would, so tests can run plugins' fallbacks. At most KSP_ABI_MINOR.
    uint16_t abi_minor = KSP_ABI_MINOR;
};

// A script-level error: what() is the message, `kind` the host's exception kind,
// `os_errno` the errno of the failed system call behind it (raise_errno), else 0.
class ScriptError : public std::runtime_error {
public:
    ScriptError(ksp_error_kind kind, const std::string& message, int os_errno = 0);
    ksp_error_kind kind;
    int os_errno;
};

// kscript's name of an error kind, e.g. "ImportError".
const char* error_kind_name(ksp_error_kind kind);

// An owning handle: copying increfs, destruction decrefs. Empty means "no value".
class Value {
public:
    Value() = default;
    static Value steal(ksp_value v);   // takes over a new reference
    static Value borrow(ksp_value v);  // takes its own reference
    Value(const Value& other);
    Value(Value&& other) noexcept;
    Value& operator=(const Value& other);
    Value& operator=(Value&& other) noexcept;
    ~Value();

    ksp_value get() const { return v_; }
    explicit operator bool() const { return v_ != nullptr; }
    ksp_value release();  // gives up ownership of the reference

private:
    explicit Value(ksp_value v) : v_(v) {}
    ksp_value v_ = nullptr;
};

// What Host::reload_live did.
struct ReloadResult {
    Value module;          // the module object: the same object as before the reload
    bool live = false;     // true: objects were handed over; false: reloaded the old way (objects closed)
    size_t moved = 0;      // instances handed over
    std::string message;   // one line for people: what happened (e.g. why it was not live)
};

namespace detail {
struct HostState;
}

class Host {
public:
    // Throws std::invalid_argument if options.abi_minor is above KSP_ABI_MINOR.
    explicit Host(HostOptions options);
    ~Host();
    Host(const Host&) = delete;
    Host& operator=(const Host&) = delete;

    // Modules (see loader.hpp for the search rules).
    Value import(const std::string& name);
    void unload(const std::string& name);
    Value reload(const std::string& name);
    // Live reload (ABI 1.4, see ksp_handover in plugin_abi.h): the new version of the
    // plugin is loaded beside the old and takes over every live instance of its types,
    // which keep their identity, as does the module object. If the host presents a minor
    // below 4 or either version cannot hand over, reloads the old way (new version loaded
    // first, then the old one torn down: its objects are closed) and says so in the
    // result. Throws ScriptError (ImportError) naming the file and the step that failed;
    // the old version then still serves every object as before.
    ReloadResult reload_live(const std::string& name);

    // Calling.
    Value call(const Value& callable, std::initializer_list<Value> args = {});
    Value call(const Value& callable, const std::vector<Value>& args);
    Value call_method(const Value& obj, const std::string& name, std::initializer_list<Value> args = {});
    Value call_method(const Value& obj, const std::string& name, const std::vector<Value>& args);
    Value getattr(const Value& obj, const std::string& name);

    // Iteration: `for x in obj` is iter() once, then next() until it returns an empty Value.
    Value iter(const Value& obj);
    Value next(const Value& iterator);

    // Making values.
    Value none();
    Value boolean(bool b);
    Value integer(int64_t i);
    Value floating(double d);
    Value str(std::string_view utf8);  // throws ValError for invalid UTF-8
    Value bytes(std::string_view data);
    Value tuple(std::initializer_list<Value> items);
    Value tuple(const std::vector<Value>& items);
    Value list(const std::vector<Value>& items);
    Value exception(ksp_error_kind kind, std::string_view message);

    // Reading values (TypeError if v is of the wrong kind).
    int64_t to_int(const Value& v);
    std::string to_str(const Value& v);
    std::string to_bytes(const Value& v);
    double to_float(const Value& v);  // accepts int too
    bool to_bool(const Value& v);
    bool is_none(const Value& v);
    size_t len(const Value& v);  // tuple/list items, bytes, str code points
    Value item(const Value& v, size_t index);
    std::string repr(const Value& v);
    std::string type_name(const Value& v);

    // Human-readable text of a module: members, enum members, type methods with
    // signatures and docstrings, getters with docs.
    std::string describe(const Value& module);

    // Introspection for tests and tools (need no lock).
    size_t live_objects() const;           // objects currently alive (all hosts, process-wide)
    size_t loaded_library_count() const;   // plugin copies currently mapped
    std::string copy_dir() const;          // private dir holding the (unlinked) plugin copies
    void request_interrupt(bool on);       // what ksp_host.interrupted() reports; on: wakers run
    size_t interrupt_wakers() const;       // ABI 1.3 registrations (set_interrupt_waker)
    const ksp_host* table() const;         // the ABI table handed to plugins (as presented)
    bool checking() const;

private:
    friend class Gil;
    std::unique_ptr<detail::HostState> state_;
};

// Holds the interpreter lock for its lifetime. Not recursive.
class Gil {
public:
    explicit Gil(Host& host);
    ~Gil();
    Gil(const Gil&) = delete;
    Gil& operator=(const Gil&) = delete;

private:
    Host& host_;
};

}  // namespace refhost

#endif
