#include "arguments.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>

namespace netplug {

ksnet::Endpoint to_endpoint(const Call &c, ksnet::Family family, ksp_value addr, const char *what) {
    const ksp_host *h = c.h;
    bool inet6 = family == ksnet::Family::Inet6;
    bool bt = family == ksnet::Family::Bluetooth;
    const char *form = inet6 ? "a tuple (host, port) or (host, port, flow, scope)"
                       : bt  ? "a tuple (address, port)"
                             : "a tuple (host, port)";
    // The words of the error messages are put together only for an error: every connect
    // comes through here.
    auto where = [&] { return std::string(c.name) + ": " + what; };
    if (!addr || h->kind_of(addr) != KSP_KIND_TUPLE) c.type_error(what, form, addr ? addr : h->none());
    size_t n = h->seq_len(addr);
    if (!(n == 2 || (inet6 && n == 4))) {
        throw HostError{KSP_ERR_SIZE, where() + " must be " + form + " for FK." + ksnet::family_name(family) +
                                          ", not a tuple of " + std::to_string(n) + " items"};
    }
    ksnet::Endpoint ep;
    ep.family = family;
    ep.host = std::string(
        c.to_str(h->seq_item(addr, 0), [&] { return std::string("the ") + (bt ? "address" : "host") + " in " + what; }));
    ksnet::check_host(ep.host, where);
    ep.port = ksnet::check_port(c.to_int(h->seq_item(addr, 1), [&] { return std::string("the port in ") + what; }),
                                where);
    if (n == 4) {
        int64_t flow = c.to_int(h->seq_item(addr, 2), "the flow in argument 'addr'");
        int64_t scope = c.to_int(h->seq_item(addr, 3), "the scope in argument 'addr'");
        if (flow < 0 || flow > 0xFFFFF) {
            throw HostError{KSP_ERR_VAL, where() + ": flow " + std::to_string(flow) +
                                             " is out of range (expected 0..1048575)"};
        }
        if (scope < 0 || scope > std::numeric_limits<uint32_t>::max()) {
            throw HostError{KSP_ERR_VAL, where() + ": scope " + std::to_string(scope) +
                                             " is out of range (expected 0..4294967295)"};
        }
        ep.flow = static_cast<uint32_t>(flow);
        ep.scope = static_cast<uint32_t>(scope);
    }
    return ep;
}

size_t size_arg(const Call &c, size_t i, const char *what, size_t fallback) {
    ksp_value v = c.arg(i);
    if (!v || c.h->kind_of(v) == KSP_KIND_NONE) return fallback;
    int64_t n = c.to_int(v, what);
    if (n < 0) {
        throw HostError{KSP_ERR_VAL, std::string(c.name) + ": " + what + " is " + std::to_string(n) +
                                         " (expected none or a size >= 0)"};
    }
    return static_cast<size_t>(n);
}

std::optional<ksnet::Clock::duration> timeout_arg(const Call &c, size_t i, const char *what) {
    ksp_value v = c.arg(i);
    if (!v || c.h->kind_of(v) == KSP_KIND_NONE) return std::nullopt;
    double seconds = 0;
    int64_t whole = 0;
    bool is_int = c.h->int_get(v, &whole) == 0;
    if (is_int) {
        c.refuse_beyond_64_bits(v, whole, [&] { return std::string(what); });
        seconds = static_cast<double>(whole);
    } else if (c.h->float_get(v, &seconds) != 0) {
        c.type_error(what, "a number of seconds or none", v);
    }
    // A year bounds the arithmetic; nobody waits longer on one call.
    if (!(seconds >= 0) || seconds > 365.0 * 24 * 3600) {
        // The value as given: an int as it is, a float in the fewest digits that read back
        // the same (so 31536000.0000001 does not print as if it were in range).
        char text[32];
        auto written = is_int ? std::to_chars(text, text + sizeof text, whole)
                              : std::to_chars(text, text + sizeof text, seconds);
        throw HostError{KSP_ERR_VAL, std::string(c.name) + ": " + what + " is " +
                                         std::string(text, written.ptr) +
                                         " (expected none or 0..31536000 seconds)"};
    }
    return std::chrono::duration_cast<ksnet::Clock::duration>(std::chrono::duration<double>(seconds));
}

ksp_value bytes_value(const ksp_host *h, const std::string &s) {
    return checked(h, h->bytes_new(s.data(), s.size())).release();
}

ksp_value bytes_filled_by(const ksp_host *h, size_t cap, ksnet::FunctionRef<size_t(char *, size_t)> fill) {
    if (!KSP_HOST_HAS(h, bytes_alloc) || !KSP_HOST_HAS(h, bytes_shrink)) {
        std::string buffer(cap, '\0');
        buffer.resize(fill(buffer.data(), cap));
        return bytes_value(h, buffer);
    }
    void *data = nullptr;
    Ref bytes = checked(h, h->bytes_alloc(cap, &data));
    size_t n = fill(static_cast<char *>(data), cap);
    if (h->bytes_shrink(bytes.get(), n) < 0) throw AlreadyRaised{};
    return bytes.release();
}

ksp_value str_value(const ksp_host *h, const std::string &s) {
    return checked(h, h->str_new(s.data(), s.size())).release();
}

ksp_value address_tuple(const ksp_host *h, const ksnet::NamePort &np) {
    Ref host(h, str_value(h, np.host));
    Ref port = checked(h, h->int_new(np.port));
    ksp_value items[] = {host.get(), port.get()};
    return checked(h, h->tuple_new(2, items)).release();
}

}  // namespace netplug
