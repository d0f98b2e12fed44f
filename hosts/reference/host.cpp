// host.cpp - refhost::Host: lifetime, modules and introspection.
// (Calling, making and reading values: host_values.cpp.)
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "abi_table.hpp"
#include "describe.hpp"
#include "errors.hpp"
#include "loader.hpp"
#include "refhost.hpp"
#include "state.hpp"
#include "types/builtins.hpp"
#include "types/module.hpp"
#include "types/type.hpp"

namespace refhost {

using detail::HostState;
using detail::LoadedModule;

Host::Host(HostOptions options) : state_(std::make_unique<HostState>()) {
    if (options.abi_minor > KSP_ABI_MINOR)
        throw std::invalid_argument("refhost: HostOptions::abi_minor is " + std::to_string(options.abi_minor) +
                                    ", but this host implements ABI " + std::to_string(KSP_ABI_MAJOR) + "." +
                                    std::to_string(KSP_ABI_MINOR) + " at most");
    // The ABI's functions take no host argument: they find it through one pointer.
    if (detail::current_state()) throw std::logic_error("refhost: only one Host may exist at a time");
    HostState& st = *state_;
    st.options = std::move(options);
    set_checking(st.options.checking);
    st.none = new NoneObject();
    st.true_obj = new BoolObject(true);
    st.false_obj = new BoolObject(false);
    st.object_type = make_root_type();
    st.base_io_type = make_base_io_type(st.object_type);
    detail::set_current_state(&st);
}

Host::~Host() {
    HostState& st = *state_;
    // Finalizers and teardowns run with the lock held, as everywhere else.
    const bool lock_here = !detail::gil_held_by_me(&st);
    if (lock_here) detail::gil_lock(&st);

    while (!st.modules.empty()) {
        LoadedModule loaded = std::move(st.modules.begin()->second);
        st.modules.erase(st.modules.begin());
        detail::unload_plugin(loaded);
    }
    for (Object** o : {&st.none, &st.true_obj, &st.false_obj}) {
        decref(*o);
        *o = nullptr;
    }
    decref(st.base_io_type);
    decref(st.object_type);

    if (checking_enabled()) {
        drain_quarantine();
        if (size_t left = live_object_count())
            std::fprintf(stderr, "refhost: %zu objects still alive at host shutdown (leaked references)\n", left);
        set_checking(false);  // objects released later are freed normally
    }
    if (!st.copy_dir.empty()) {
        std::error_code ec;  // the copies were unlinked at load; remove whatever is left
        std::filesystem::remove_all(st.copy_dir, ec);
    }
    if (lock_here) detail::gil_unlock(&st);
    detail::set_current_state(nullptr);
}

Value Host::import(const std::string& name) {
    HostState& st = *state_;
    auto it = st.modules.find(name);
    if (it != st.modules.end()) return Value::borrow(as_val(it->second.module));
    LoadedModule loaded;
    if (!detail::load_plugin(st, name, loaded)) throw_current_error();
    Value module = Value::borrow(as_val(loaded.module));
    st.modules.emplace(name, std::move(loaded));
    return module;
}

void Host::unload(const std::string& name) {
    HostState& st = *state_;
    auto it = st.modules.find(name);
    if (it == st.modules.end()) throw ScriptError(KSP_ERR_IMPORT, "module '" + name + "' is not loaded");
    LoadedModule loaded = std::move(it->second);
    st.modules.erase(it);
    detail::unload_plugin(loaded);
}

// The new copy must import successfully before the old one is retired, so a broken
// rebuild leaves the old version serving.
Value Host::reload(const std::string& name) {
    HostState& st = *state_;
    LoadedModule fresh;
    if (!detail::load_plugin(st, name, fresh)) throw_current_error();
    auto it = st.modules.find(name);
    if (it != st.modules.end()) {
        LoadedModule old = std::move(it->second);
        st.modules.erase(it);
        detail::unload_plugin(old);
    }
    Value module = Value::borrow(as_val(fresh.module));
    st.modules.emplace(name, std::move(fresh));
    return module;
}

std::string Host::describe(const Value& module) {
    auto* m = as<ModuleObject>(module.get(), ObjKind::Module);
    if (!m) throw ScriptError(KSP_ERR_TYPE, "describe: expected a module, got " + type_name(module));
    const Library* lib = nullptr;
    for (const auto& [name, loaded] : state_->modules)
        if (loaded.module == m) lib = loaded.lib.get();
    std::string out;
    if (!describe_module(m, lib, out)) throw_current_error();
    return out;
}

size_t Host::live_objects() const { return live_object_count(); }
size_t Host::loaded_library_count() const { return open_library_count(); }
std::string Host::copy_dir() const { return state_->copy_dir; }
void Host::request_interrupt(bool on) {
    state_->interrupt.store(on);
    if (!on) return;
    std::lock_guard lk(state_->wakers_mu);
    for (auto& [wake, arg] : state_->interrupt_wakers) wake(arg);
}

size_t Host::interrupt_wakers() const {
    std::lock_guard lk(state_->wakers_mu);
    return state_->interrupt_wakers.size();
}
const ksp_host* Host::table() const { return abi_table(state_->options.abi_minor); }
bool Host::checking() const { return state_->options.checking; }

}  // namespace refhost
