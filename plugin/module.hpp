// module.hpp - the state of one loaded `net` module, shared by the binding files.
#pragma once

#include <memory>
#include <vector>

#include "ksnet/runtime.hpp"
#include "ksnet/socket.hpp"
#include "ksp/plugin_abi.h"

namespace netplug {

struct NetModule {
    const ksp_host *host = nullptr;
    std::shared_ptr<ksnet::Runtime> rt;
    // Borrowed by nobody else: released at teardown.
    ksp_value fk_enum = nullptr;
    ksp_value sk_enum = nullptr;
    ksp_value pk_enum = nullptr;
    ksp_value socket_type = nullptr;
    // The sockets saved by the live reload in progress (handover.cpp).
    std::vector<std::shared_ptr<ksnet::Socket>> handing_over;
};

// A SocketIO instance's payload. Calls hold their own reference for their length: after
// a live reload the instance lets go of a socket that a call on its way back still uses.
struct SocketPayload {
    std::shared_ptr<ksnet::Socket> socket;
};

// Each adds its part to `module` (enums.cpp, socketio.cpp). Throw on failure.
void add_enums(NetModule &m, ksp_value module);
void add_socket_type(NetModule &m, ksp_value module);
// A new SocketIO payload for `s` (socketio.cpp); the instance's finalizer frees it.
SocketPayload *new_payload(std::unique_ptr<ksnet::Socket> s);
// What init hands the host for live reloads (handover.cpp).
const ksp_handover *net_handover();

}  // namespace netplug
