// ksnet/error.hpp - the one exception type the core throws.
//
// The core never knows which interpreter it serves; it says what kind of failure
// happened and the binding maps each kind onto the host's exception kinds.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace ksnet {

enum class ErrorKind {
    Value,        // an argument has the right type but a wrong value (bad address, port)
    Os,           // a system call failed; `code` is the libuv error (negative errno)
    Timeout,      // a blocking call ran out of time
    Closed,       // the socket is closed (by close(), by the peer's reset, or at unload)
    State,        // the call does not fit the socket's state (read before connect, ...)
    Unsupported,  // this system or this plugin cannot do that combination
    Interrupted,  // the host asked the waiting script to stop
    Moved,        // the socket was handed to another version of the plugin while the call
                  // waited (live reload): the host calls again on the new version
};


class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string &message, int code = 0)
        : std::runtime_error(message), kind_(kind), code_(code) {}
    ErrorKind kind() const noexcept { return kind_; }
    int code() const noexcept { return code_; }  // libuv error code, 0 if none
    // The errno behind it, 0 if none: libuv's codes are -errno on Unix, except its own
    // (name resolution's UV_EAI_*, UV_EOF, ...), which lie at -3000 and below.
    int os_errno() const noexcept { return code_ < 0 && code_ > -3000 ? -code_ : 0; }

private:
    ErrorKind kind_;
    int code_;
};

// The one formatter of system errors: "connect 127.0.0.1:9: ECONNREFUSED (connection
// refused)", from a libuv error code (os_error) or an errno value (errno_error).
Error os_error(std::string_view operation, std::string_view address, int uv_code);
Error errno_error(std::string_view operation, std::string_view address, int err);
// "ECONNREFUSED (connection refused)" alone, for messages of another shape.
std::string error_text(int uv_code);

// Thrown by a call that left its socket for a live reload having done nothing a script
// could see.
Error moved_error(const char *op);

// Throws os_error(...) if uv_code < 0.
void check_uv(int uv_code, std::string_view operation, std::string_view address);

}  // namespace ksnet
