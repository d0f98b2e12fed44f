// object.cpp - reference counting, live-object accounting and the quarantine.
#include "object.hpp"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

namespace refhost {

namespace {

// Objects are made and freed by the thread holding the interpreter lock (plugin_abi.h),
// so the count changes with a load and a store: a read-modify-write per object made and
// per object freed was a noticeable part of a cheap call. Atomic so that
// live_object_count() may read it from any thread.
std::atomic<size_t> g_live{0};
void add_live(size_t delta) { g_live.store(g_live.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed); }

// Released objects in checking mode, with the type name they had, for messages.
std::mutex g_quarantine_mutex;
std::unordered_map<Object*, std::string>* g_quarantine = nullptr;

std::string quarantined_name(Object* o) {
    std::lock_guard<std::mutex> lock(g_quarantine_mutex);
    if (g_quarantine) {
        auto it = g_quarantine->find(o);
        if (it != g_quarantine->end()) return it->second;
    }
    return "?";
}

}  // namespace

void detail::destroy(Object* o) {
    add_live(static_cast<size_t>(-1));
    if (!checking_enabled()) {
        o->clear();
        delete o;
        return;
    }
    std::string name = o->type_name();
    o->clear();
    o->magic = Object::kFreedMagic;
    std::lock_guard<std::mutex> lock(g_quarantine_mutex);
    if (!g_quarantine) g_quarantine = new std::unordered_map<Object*, std::string>();
    g_quarantine->emplace(o, std::move(name));
}

Object::Object(ObjKind k) : kind(k) { add_live(1); }
Object::~Object() = default;

void fatal(const std::string& message) {
    std::fprintf(stderr, "refhost: %s\n", message.c_str());
    std::fflush(stderr);
    std::abort();
}

void detail::check_live_handle(ksp_value v, const char* what) {
    Object* o = as_obj(v);
    if (o->magic == Object::kLiveMagic) return;
    if (o->magic == Object::kFreedMagic)
        fatal(std::string(what) + " on a released object (type " + quarantined_name(o) +
              "): a double release, or use of a handle after its last reference was released");
    fatal(std::string(what) + " on something that is not a host object (bad handle)");
}

size_t live_object_count() { return g_live.load(std::memory_order_relaxed); }

void set_checking(bool on) { detail::g_checking.store(on); }

void drain_quarantine() {
    std::unordered_map<Object*, std::string>* q;
    {
        std::lock_guard<std::mutex> lock(g_quarantine_mutex);
        q = g_quarantine;
        g_quarantine = nullptr;
    }
    if (!q) return;
    for (auto& entry : *q) delete entry.first;
    delete q;
}

}  // namespace refhost
