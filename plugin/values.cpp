#include "values.hpp"

namespace netplug {

Ref checked(const ksp_host *h, ksp_value v) {
    if (!v) throw AlreadyRaised{};
    return Ref(h, v);
}

void Call::wrong_count(size_t min, size_t max) const {
    std::string msg = std::string(name) + " takes ";
    if (min == max) {
        msg += std::to_string(min);
    } else {
        msg += "from " + std::to_string(min) + " to " + std::to_string(max);
    }
    msg += min == max && max == 1 ? " argument" : " arguments";
    msg += " (" + std::to_string(nargs) + " given)";
    throw HostError{KSP_ERR_ARG, msg};
}

void Call::type_error(const char *what, const char *expected, ksp_value got) const {
    throw HostError{KSP_ERR_TYPE, std::string(name) + ": " + what + " must be " + expected + ", not " +
                                      h->type_name(got)};
}

void Call::refuse_if_saturated(ksp_value v, int64_t got, ksnet::FunctionRef<std::string()> what) const {
    // Only the two end values pay for a repr; an int that is exactly one of them passes.
    Ref text = checked(h, h->repr(v));
    const char *digits = nullptr;
    size_t n = 0;
    if (h->str_get(text.get(), &digits, &n) < 0) return;
    std::string written(digits, n);
    if (written == std::to_string(got)) return;
    throw HostError{KSP_ERR_OVERFLOW, std::string(name) + ": " + what() + " is " + written +
                                          ", which does not fit in 64 bits"};
}

int64_t Call::to_int(ksp_value v, const char *what) const {
    int64_t out = 0;
    if (h->int_get(v, &out) < 0) type_error(what, "an int", v);
    refuse_beyond_64_bits(v, out, [&] { return std::string(what); });
    return out;
}

int64_t Call::to_int_or_bool(ksp_value v, const char *what) const {
    int64_t out = 0;
    if (h->int_get(v, &out) == 0) {
        refuse_beyond_64_bits(v, out, [&] { return std::string(what); });
        return out;
    }
    if (!KSP_HOST_HAS(h, bool_get)) type_error(what, "an int (this host cannot read bools: ABI 1.0)", v);
    int b = 0;
    if (h->bool_get(v, &b) == 0) return b;
    type_error(what, "an int or a bool", v);
}

int64_t Call::to_int(ksp_value v, ksnet::FunctionRef<std::string()> what) const {
    int64_t out = 0;
    if (h->int_get(v, &out) < 0) type_error(what().c_str(), "an int", v);
    refuse_beyond_64_bits(v, out, what);
    return out;
}

std::string_view Call::to_str(ksp_value v, ksnet::FunctionRef<std::string()> what) const {
    const char *s = nullptr;
    size_t n = 0;
    if (h->str_get(v, &s, &n) < 0) type_error(what().c_str(), "a str", v);
    return {s, n};
}

std::string_view Call::to_str(ksp_value v, const char *what) const {
    const char *s = nullptr;
    size_t n = 0;
    if (h->str_get(v, &s, &n) < 0) type_error(what, "a str", v);
    return {s, n};
}

std::string_view Call::to_data(ksp_value v, const char *what) const {
    const void *p = nullptr;
    size_t n = 0;
    if (h->bytes_get(v, &p, &n) == 0) return {static_cast<const char *>(p), n};
    const char *s = nullptr;
    if (h->str_get(v, &s, &n) == 0) return {s, n};
    type_error(what, "bytes or str", v);
}

ksp_error_kind host_kind(ksnet::ErrorKind k) {
    switch (k) {
    case ksnet::ErrorKind::Value: return KSP_ERR_VAL;
    case ksnet::ErrorKind::Os: return KSP_ERR_OS;
    case ksnet::ErrorKind::Timeout: return KSP_ERR_TIMEOUT;
    case ksnet::ErrorKind::Closed: return KSP_ERR_IO;
    case ksnet::ErrorKind::State: return KSP_ERR_IO;
    case ksnet::ErrorKind::Unsupported: return KSP_ERR_OS;
    case ksnet::ErrorKind::Interrupted: return KSP_ERR_INTERRUPT;
    case ksnet::ErrorKind::Moved: return KSP_ERR_MOVED;  // only after a 1.4 host began a handover
    }
    return KSP_ERR_ERROR;
}

}  // namespace netplug
