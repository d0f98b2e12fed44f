// values.hpp - host values in C++: an owning reference, argument conversion that names
// what was wrong, and the guard that turns every C++ exception into a host error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ksnet/error.hpp"
#include "ksnet/function_ref.hpp"
#include "ksp/plugin_abi.h"

namespace netplug {

// An error to raise into the host with this kind and message.
struct HostError {
    ksp_error_kind kind;
    std::string message;
};
// The host already raised (a host call returned NULL): just return NULL.
struct AlreadyRaised {};

// An owned reference: released once, when this dies.
class Ref {
public:
    Ref(const ksp_host *h, ksp_value v) : h_(h), v_(v) {}
    Ref(Ref &&o) noexcept : h_(o.h_), v_(o.v_) { o.v_ = nullptr; }
    Ref(const Ref &) = delete;
    Ref &operator=(const Ref &) = delete;
    ~Ref() { if (v_) h_->decref(v_); }
    ksp_value get() const { return v_; }
    ksp_value release() { ksp_value v = v_; v_ = nullptr; return v; }

private:
    const ksp_host *h_;
    ksp_value v_;
};

// Throws AlreadyRaised if `v` is NULL; otherwise owns it.
Ref checked(const ksp_host *h, ksp_value v);

// What a method call is, for messages: "SocketIO.bind()".
struct Call {
    const ksp_host *h;
    const char *name;
    size_t nargs;
    const ksp_value *args;

    // ArgError unless min <= nargs <= max. Inline: every call checks it.
    void expect_count(size_t min, size_t max) const {
        if (nargs < min || nargs > max) wrong_count(min, max);
    }
    [[noreturn]] void wrong_count(size_t min, size_t max) const;
    void refuse_if_saturated(ksp_value v, int64_t got, ksnet::FunctionRef<std::string()> what) const;
    // The argument at i, or NULL if it was not given.
    ksp_value arg(size_t i) const { return i < nargs ? args[i] : nullptr; }

    [[noreturn]] void type_error(const char *what, const char *expected, ksp_value got) const;
    int64_t to_int(ksp_value v, const char *what) const;
    // The same, with `what` put together only for an error (calls made per connection).
    int64_t to_int(ksp_value v, ksnet::FunctionRef<std::string()> what) const;
    // An int, or a bool as 0/1 (bools need a host of ABI 1.1 or later).
    int64_t to_int_or_bool(ksp_value v, const char *what) const;
    std::string_view to_str(ksp_value v, const char *what) const;
    std::string_view to_str(ksp_value v, ksnet::FunctionRef<std::string()> what) const;
    // int_get saturates (ABI): `got`, read from v, at either end of int64_t may stand for
    // a bigger int, which no argument takes: OverflowError naming v as the script wrote it.
    void refuse_beyond_64_bits(ksp_value v, int64_t got, ksnet::FunctionRef<std::string()> what) const {
        if (got == INT64_MAX || got == INT64_MIN) refuse_if_saturated(v, got, what);
    }
    // bytes as they are, str as UTF-8.
    std::string_view to_data(ksp_value v, const char *what) const;
};

// Maps a core error kind onto the host's.
ksp_error_kind host_kind(ksnet::ErrorKind k);

// Runs `body`, returning its result or NULL with the host's error set. Nothing escapes.
template <class F>
auto guarded(const ksp_host *h, F &&body) noexcept -> decltype(body()) {
    using Result = decltype(body());  // a ksp_value, or a payload pointer: NULL on failure
    // A failed system call's errno goes to a 1.5 host as a number; older hosts read it
    // from the message, which names it ("ECONNREFUSED (connection refused)").
    auto fail = [&](ksp_error_kind kind, const char *message, int os_errno = 0) {
        if (os_errno != 0 && KSP_HOST_HAS(h, raise_errno)) h->raise_errno(kind, os_errno, message);
        else h->raise(kind, message);
        return Result{};
    };
    try {
        return body();
    } catch (const AlreadyRaised &) {
        return Result{};
    } catch (const HostError &e) {
        return fail(e.kind, e.message.c_str());
    } catch (const ksnet::Error &e) {
        return fail(host_kind(e.kind()), e.what(), e.os_errno());
    } catch (const std::bad_alloc &) {
        return fail(KSP_ERR_ERROR, "net: out of memory");
    } catch (const std::exception &e) {
        return fail(KSP_ERR_ERROR, e.what());
    } catch (...) {
        return fail(KSP_ERR_ERROR, "net: unexpected internal error");
    }
}

}  // namespace netplug
