// library.cpp - lifetime of a loaded plugin copy.
#include "library.hpp"

#include <dlfcn.h>

namespace refhost {

namespace {
std::atomic<size_t> g_open{0};
}  // namespace

size_t open_library_count() { return g_open.load(); }
void note_library_opened() { g_open.fetch_add(1); }

Library::~Library() { close(); }

void Library::close() {
    if (!handle) return;
    dlclose(handle);
    handle = nullptr;
    g_open.fetch_sub(1);
}

void Library::instance_gone() {
    if (live_instances.fetch_sub(1) == 1 && torn_down.load()) close();
}

}  // namespace refhost
