// state.cpp - the file-level pointer through which the ABI functions find the Host.
#include "state.hpp"

namespace refhost::detail {

namespace {
std::atomic<HostState*> g_state{nullptr};
}

HostState* current_state() { return g_state.load(std::memory_order_acquire); }
void set_current_state(HostState* state) { g_state.store(state, std::memory_order_release); }

}  // namespace refhost::detail
