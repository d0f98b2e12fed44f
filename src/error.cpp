#include "ksnet/error.hpp"

#include <uv.h>

namespace ksnet {

Error os_error(std::string_view operation, std::string_view address, int uv_code) {
    std::string msg(operation);
    if (!address.empty()) {
        msg += ' ';
        msg += address;
    }
    msg += ": ";
    msg += uv_err_name(uv_code);
    msg += " (";
    msg += uv_strerror(uv_code);
    msg += ')';
    ErrorKind kind = uv_code == UV_ETIMEDOUT ? ErrorKind::Timeout : ErrorKind::Os;
    return Error(kind, msg, uv_code);
}

void check_uv(int uv_code, std::string_view operation, std::string_view address) {
    if (uv_code < 0) throw os_error(operation, address, uv_code);
}

}  // namespace ksnet
