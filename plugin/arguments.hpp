// arguments.hpp - converting SocketIO's arguments (addresses, sizes, timeouts) and
// results (addresses as tuples). Each names the argument and the expected form.
#pragma once

#include <functional>
#include <optional>

#include "ksnet/socket.hpp"
#include "values.hpp"

namespace netplug {

// (host, port) for INET4; (host, port) or (host, port, flow, scope) for INET6;
// (address, port) for BT.
ksnet::Endpoint to_endpoint(const Call &c, ksnet::Family family, ksp_value addr, const char *what);

// A size >= 0, or none (or absent): `fallback`.
size_t size_arg(const Call &c, size_t i, const char *what, size_t fallback);

// Seconds (int or float, >= 0), or none (or absent): nullopt.
std::optional<ksnet::Clock::duration> timeout_arg(const Call &c, size_t i, const char *what);

// (host, port), as recvfrom() returns a sender.
ksp_value address_tuple(const ksp_host *h, const ksnet::NamePort &np);

ksp_value bytes_value(const ksp_host *h, const std::string &s);
// A bytes of at most `cap` bytes written by fill(data, cap), which returns how many it
// wrote. A host of ABI 1.2 lets fill() write into the bytes itself (bytes_alloc); an
// older one gets a copy.
ksp_value bytes_filled_by(const ksp_host *h, size_t cap, ksnet::FunctionRef<size_t(char *, size_t)> fill);
ksp_value str_value(const ksp_host *h, const std::string &s);

}  // namespace netplug
