// errors.hpp - the per-thread current error, as the ABI's raise()/error_occurred() see it.
//
// Internal functions follow the C convention of the ABI: on failure they set the current
// error and return NULL (or false). The C++ API turns that into a thrown ScriptError.
#ifndef REFHOST_ERRORS_HPP
#define REFHOST_ERRORS_HPP

#include <string>

#include "ksp/plugin_abi.h"
#include "refhost.hpp"

namespace refhost {

struct PendingError {
    ksp_error_kind kind = KSP_ERR_ERROR;
    std::string message;
    int os_errno = 0;  // raise_errno's, else 0
};

namespace detail {
// Whether this thread has a current error. Inline (constinit: no TLS init wrapper)
// because every native call checks and clears it; the error itself is in errors.cpp.
inline constinit thread_local bool t_error_set = false;
void forget_error();  // clears the current error's text and the flag
}  // namespace detail

// Sets this thread's current error (replacing any) and returns NULL, so that functions
// can `return raise(...)`.
std::nullptr_t raise(ksp_error_kind kind, std::string message, int os_errno = 0);
inline bool error_occurred() { return detail::t_error_set; }
bool error_is(ksp_error_kind kind);
inline void clear_error() {
    if (detail::t_error_set) detail::forget_error();
}
// Takes and clears the current error. Without one, returns a generic Error.
PendingError take_error();
// Takes the current error and throws it as a ScriptError.
[[noreturn]] void throw_current_error();
// Returns `v` as a new reference, or throws the current error if `v` is NULL.
inline ksp_value checked(ksp_value v) {
    if (!v) throw_current_error();
    return v;
}

}  // namespace refhost

#endif
