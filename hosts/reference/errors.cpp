// errors.cpp - per-thread current error and ScriptError.
#include "errors.hpp"

namespace refhost {

namespace {
// The host is never unloaded, so a thread_local with a destructor is fine here (unlike
// in a plugin, where it would pin the library in memory).
thread_local PendingError t_error;  // meaningful while detail::t_error_set
}  // namespace

ScriptError::ScriptError(ksp_error_kind k, const std::string& message, int err)
    : std::runtime_error(message), kind(k), os_errno(err) {}

const char* error_kind_name(ksp_error_kind kind) {
    switch (kind) {
    case KSP_ERR_ERROR: return "Error";
    case KSP_ERR_ARG: return "ArgError";
    case KSP_ERR_ATTR: return "AttrError";
    case KSP_ERR_IO: return "IOError";
    case KSP_ERR_OS: return "OSError";
    case KSP_ERR_IMPORT: return "ImportError";
    case KSP_ERR_INDEX: return "IndexError";
    case KSP_ERR_KEY: return "KeyError";
    case KSP_ERR_OVERFLOW: return "OverflowError";
    case KSP_ERR_SIZE: return "SizeError";
    case KSP_ERR_TYPE: return "TypeError";
    case KSP_ERR_VAL: return "ValError";
    case KSP_ERR_TIMEOUT: return "TimeoutError";
    case KSP_ERR_STOP_ITER: return "OutOfIterException";
    case KSP_ERR_INTERRUPT: return "InterruptError";
    case KSP_ERR_MOVED: return "MovedError";  // never reaches a script: the call is retried
    }
    return "Error";
}

std::nullptr_t raise(ksp_error_kind kind, std::string message, int os_errno) {
    detail::t_error_set = true;
    t_error.kind = kind;
    t_error.message = std::move(message);
    t_error.os_errno = os_errno;
    return nullptr;
}

bool error_is(ksp_error_kind kind) { return detail::t_error_set && t_error.kind == kind; }

void detail::forget_error() {
    t_error_set = false;
    t_error.message.clear();
}

PendingError take_error() {
    if (!detail::t_error_set) return PendingError{KSP_ERR_ERROR, "unknown error (no error was set)"};
    PendingError e = std::move(t_error);
    clear_error();
    return e;
}

void throw_current_error() {
    PendingError e = take_error();
    throw ScriptError(e.kind, e.message, e.os_errno);
}

}  // namespace refhost
