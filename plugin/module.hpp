// module.hpp - the state of one loaded `net` module, shared by the binding files.
#pragma once

#include <memory>

#include "ksnet/runtime.hpp"
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
};

// Each adds its part to `module` (enums.cpp, socketio.cpp). Throw on failure.
void add_enums(NetModule &m, ksp_value module);
void add_socket_type(NetModule &m, ksp_value module);

}  // namespace netplug
