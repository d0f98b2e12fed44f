#include "fork.hpp"

#include <pthread.h>

#include <mutex>

#include "ksnet/runtime.hpp"

namespace ksnet {

namespace {
// Trivially destructible on purpose: no static destructor may pin or outlive the plugin.
std::mutex registry_mu;
Runtime *registry_head = nullptr;
pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

// registry_mu stays locked from prepare to parent/child, so no runtime starts or stops
// while the process forks.
void before_fork() {
    registry_mu.lock();
    for (Runtime *rt = registry_head; rt; rt = ForkRegistry::next(rt)) rt->park_for_fork();
}

void after_fork_in_parent() {
    for (Runtime *rt = registry_head; rt; rt = ForkRegistry::next(rt)) rt->resume_in_parent();
    registry_mu.unlock();
}

void after_fork_in_child() {
    for (Runtime *rt = registry_head; rt; rt = ForkRegistry::next(rt)) rt->restart_in_child();
    registry_mu.unlock();
}

void install_handlers() { pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child); }
}  // namespace

Runtime *ForkRegistry::next(Runtime *rt) { return rt->fork_next_; }

void ForkRegistry::add(Runtime *rt) {
    pthread_once(&handlers_once, install_handlers);
    std::lock_guard lk(registry_mu);
    rt->fork_next_ = registry_head;
    registry_head = rt;
}

void ForkRegistry::remove(Runtime *rt) {
    std::lock_guard lk(registry_mu);
    for (Runtime **p = &registry_head; *p; p = &(*p)->fork_next_) {
        if (*p == rt) {
            *p = rt->fork_next_;
            rt->fork_next_ = nullptr;
            return;
        }
    }
}

}  // namespace ksnet
