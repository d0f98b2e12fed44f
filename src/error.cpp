#include "ksnet/error.hpp"

#include <uv.h>

#include <cctype>
#include <cstring>
#include <string>

namespace ksnet {

namespace {

// "EHOSTDOWN (host is down)". uv_err_name/uv_strerror allocate a string they never free
// for a code libuv has no name for (EHOSTDOWN, ENONET, ...): the _r forms, then glibc's
// names for those.
std::string describe_code(int uv_code) {
    char name[64];
    uv_err_name_r(uv_code, name, sizeof name);
    if (std::strncmp(name, "Unknown", 7) != 0) {
        char text[128];
        uv_strerror_r(uv_code, text, sizeof text);
        return std::string(name) + " (" + text + ")";
    }
    int err = -uv_code;  // on Unix a libuv code is the negated errno
    const char *n = strerrorname_np(err);
    const char *d = strerrordesc_np(err);
    std::string text = d ? d : "unknown error";
    for (char &c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return (n ? std::string(n) : "errno " + std::to_string(err)) + " (" + text + ")";
}

}  // namespace

Error os_error(std::string_view operation, std::string_view address, int uv_code) {
    std::string msg(operation);
    if (!address.empty()) {
        msg += ' ';
        msg += address;
    }
    msg += ": ";
    msg += describe_code(uv_code);
    ErrorKind kind = uv_code == UV_ETIMEDOUT ? ErrorKind::Timeout : ErrorKind::Os;
    return Error(kind, msg, uv_code);
}

Error errno_error(std::string_view operation, std::string_view address, int err) {
    return os_error(operation, address, uv_translate_sys_error(err));
}

void check_uv(int uv_code, std::string_view operation, std::string_view address) {
    if (uv_code < 0) throw os_error(operation, address, uv_code);
}

std::string error_text(int uv_code) { return describe_code(uv_code); }

Error moved_error(const char *op) {
    return Error(ErrorKind::Moved, std::string(op) + ": the socket moved to another version of the net plugin");
}

}  // namespace ksnet
