// gil.cpp - the interpreter lock.
//
// One mutex per Host. Every thread that touches values holds it; a plugin about to block
// gives it up with release_lock() and takes it back with acquire_lock() (as Python's
// Py_BEGIN_ALLOW_THREADS), so other script threads run meanwhile.
#include "state.hpp"

namespace refhost::detail {

void gil_lock(HostState* st) {
    st->gil.lock();
    st->gil_owner.store(std::this_thread::get_id());
}

void gil_unlock(HostState* st) {
    st->gil_owner.store(std::thread::id());
    st->gil.unlock();
}

bool gil_held_by_me(const HostState* st) { return st->gil_owner.load() == std::this_thread::get_id(); }

}  // namespace refhost::detail

namespace refhost {

Gil::Gil(Host& host) : host_(host) { detail::gil_lock(host_.state_.get()); }
Gil::~Gil() { detail::gil_unlock(host_.state_.get()); }

}  // namespace refhost
