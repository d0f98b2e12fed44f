// entry.cpp - the plugin's one exported symbol, init and teardown.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>

#include "ksp/plugin_abi.h"
#include "module.hpp"
#include "values.hpp"

namespace netplug {

namespace {

// A blocked call steps aside for the interpreter through the host's lock entries.
class HostWaitHooks final : public ksnet::WaitHooks {
public:
    explicit HostWaitHooks(const ksp_host *h) : h_(h) {}
    void *release() override { return h_->release_lock(); }
    void reacquire(void *token) override { h_->acquire_lock(token); }
    bool interrupted() override { return h_->interrupted() != 0; }
    ksnet::Clock::time_point call_began() override {
        if (!KSP_HOST_HAS(h_, call_began_ns)) return ksnet::Clock::now();  // older host
        // The host's clock is CLOCK_MONOTONIC: carried over as the time since then.
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        const int64_t ago = int64_t{now.tv_sec} * 1000000000 + now.tv_nsec - h_->call_began_ns();
        return ksnet::Clock::now() - std::chrono::nanoseconds(std::max<int64_t>(ago, 0));
    }

private:
    const ksp_host *h_;
};

constexpr const char *kModuleDoc =
    "The network module: sockets of the families in net.FK, the kinds in net.SK and the protocols "
    "in net.PK, through net.SocketIO. Backed by libuv, on a loop thread owned by the module.";

void release_refs(NetModule &m) {
    for (ksp_value *v : {&m.socket_type, &m.pk_enum, &m.sk_enum, &m.fk_enum}) {
        m.host->decref(*v);
        *v = nullptr;
    }
}

// ABI 1.3: the host says when it interrupts a script, so waits end at once.
void wake_for_interrupt(void *arg) { static_cast<NetModule *>(arg)->rt->wake_for_interrupt(); }

void listen_for_interrupts(NetModule &m) {
    if (!KSP_HOST_HAS(m.host, set_interrupt_waker)) return;  // older host: polled
    if (m.host->set_interrupt_waker(wake_for_interrupt, &m) == 0) m.rt->set_interrupts_pushed(true);
}

void stop_listening_for_interrupts(NetModule &m) {
    if (m.rt && m.rt->interrupts_pushed()) m.host->set_interrupt_waker(nullptr, &m);
}

// Tests lengthen the wait slice (KSNET_WAIT_SLICE_MS) to show that wake-ups do not wait
// for its end.
ksnet::Clock::duration wait_slice() {
    const char *ms = std::getenv("KSNET_WAIT_SLICE_MS");
    if (!ms || !*ms) return ksnet::Runtime::kWaitSlice;
    return std::chrono::milliseconds(std::strtoll(ms, nullptr, 10));
}

void teardown(void *ctx) noexcept {
    auto *m = static_cast<NetModule *>(ctx);
    stop_listening_for_interrupts(*m);  // before the runtime goes: no wake-up after this
    // Closes every socket (waking blocked callers), joins the loop thread and closes the
    // loop. Instances still alive keep their payloads until their finalizers run.
    m->rt->shutdown();
    m->rt.reset();
    release_refs(*m);
    delete m;
}

int init(const ksp_host *host, ksp_init_result *out) noexcept {
    std::string failure;
    try {
        if (host->abi_major != KSP_ABI_MAJOR || !KSP_HOST_HAS(host, strdup)) {
            failure = "net needs host ABI 1.0 or newer (with a complete 1.0 table)";
        } else {
            auto m = std::make_unique<NetModule>();
            m->host = host;
            m->rt = ksnet::Runtime::start(std::make_shared<HostWaitHooks>(host), wait_slice());
            ksp_value module = host->module_new("net", kModuleDoc);
            if (!module) throw AlreadyRaised{};
            Ref owned(host, module);
            try {
                add_enums(*m, module);
                add_socket_type(*m, module);
            } catch (...) {
                m->rt->shutdown();
                release_refs(*m);
                throw;
            }
            listen_for_interrupts(*m);
            // ABI 1.4: live reload, if both the host and its result struct know it.
            if (host->abi_minor >= 4 && out->size >= offsetof(ksp_init_result, handover) + sizeof out->handover) {
                out->handover = net_handover();
            }
            out->module = owned.release();
            out->teardown = teardown;
            out->ctx = m.release();
            return 0;
        }
    } catch (const AlreadyRaised &) {
        failure = "net: building the module failed in the host";
    } catch (const std::exception &e) {
        failure = std::string("net: ") + e.what();
    } catch (...) {
        failure = "net: unexpected failure during init";
    }
    out->error = host->strdup(failure.c_str());
    return -1;
}

const ksp_plugin_decl kDecl = {
    // Needs only ABI 1.0: entries added later are used when KSP_HOST_HAS says the host
    // has them, so the plugin still loads in a 1.0 host.
    sizeof(ksp_plugin_decl), KSP_ABI_MAJOR, 0, "net", KSNET_VERSION, init,
};

}  // namespace

}  // namespace netplug

extern "C" __attribute__((visibility("default"))) const ksp_plugin_decl *ksp_plugin_entry(void) {
    return &netplug::kDecl;
}
