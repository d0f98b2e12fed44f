// library.cpp - lifetime of a loaded plugin copy.
#include "library.hpp"

#include <dlfcn.h>

#include "loader.hpp"
#include "object.hpp"

namespace refhost {

namespace {
std::atomic<size_t> g_open{0};
}  // namespace

size_t open_library_count() { return g_open.load(); }
void note_library_opened() { g_open.fetch_add(1); }

Library::Library() { instances.prev = instances.next = &instances; }

Library::~Library() { close(); }

void Library::close() {
    if (!handle) return;
    dlclose(handle);
    handle = nullptr;
    g_open.fetch_sub(1);
}

void Library::instance_born(InstanceLink* link) {
    link->prev = instances.prev;
    link->next = &instances;
    instances.prev->next = link;
    instances.prev = link;
    live_instances.fetch_add(1);
}

void Library::instance_gone(InstanceLink* link) {
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link->next = nullptr;
    if (live_instances.fetch_sub(1) == 1 && torn_down.load()) release_if_unused();
}

void Library::became_idle() {
    if (teardown_when_idle) {
        teardown_when_idle = false;
        std::shared_ptr<Library> keep = std::move(self_until_torn_down);
        detail::tear_down_library(*this);  // unmaps it too, if it can
        return;
    }
    if (torn_down.load()) release_if_unused();
}

void Library::release_if_unused() {
    if (!torn_down.load() || live_instances.load() != 0 || calls_in_progress.load() != 0) return;
    // The retired types may hold the last references to this library.
    std::shared_ptr<Library> keep = weak_from_this().lock();
    close();
    std::vector<Object*> types = std::move(retired_types);
    retired_types.clear();
    for (Object* t : types) decref(t);
}

}  // namespace refhost
