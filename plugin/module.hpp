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

// A SocketIO instance's payload. A call that gave the interpreter lock up may outlive the
// instance's hold on it: a live reload that commits meanwhile finalizes the old payload
// while the call, on its way back through the old version, still uses the socket. So
// calls count themselves in (SocketCall) and the finalizer leaves the payload to the last
// one out. Methods, getters and finalizers all run with the interpreter lock held
// (plugin_abi.h), so the count is a plain one: no atomic operation per call.
struct SocketPayload {
    std::shared_ptr<ksnet::Socket> socket;
    unsigned calls = 0;      // calls in progress on this payload
    bool finalized = false;  // the instance let go of it: the last call frees it
};

// One call's use of a payload, for the call's whole length (lock held at both ends).
class SocketCall {
public:
    explicit SocketCall(SocketPayload &p) : p_(p) { ++p_.calls; }
    ~SocketCall() {
        if (--p_.calls == 0 && p_.finalized) delete &p_;
    }
    SocketCall(const SocketCall &) = delete;
    SocketCall &operator=(const SocketCall &) = delete;
    ksnet::Socket &socket() const { return *p_.socket; }

private:
    SocketPayload &p_;
};

// Each adds its part to `module` (enums.cpp, socketio.cpp). Throw on failure.
void add_enums(NetModule &m, ksp_value module);
void add_socket_type(NetModule &m, ksp_value module);
// A new SocketIO payload for `s` (socketio.cpp); the instance's finalizer frees it.
SocketPayload *new_payload(std::unique_ptr<ksnet::Socket> s);
// What init hands the host for live reloads (handover.cpp).
const ksp_handover *net_handover();

}  // namespace netplug
