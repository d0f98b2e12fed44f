// live_reload.cpp - Host::reload_live: a new version of a plugin takes over the live
// instances of the running one (ABI 1.4, ksp_handover in plugin_abi.h, whose comment
// lists the host's duties in order; the steps below follow it).
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "errors.hpp"
#include "loader.hpp"
#include "refhost.hpp"
#include "state.hpp"
#include "types/module.hpp"
#include "types/type.hpp"

namespace refhost {

using detail::HostState;
using detail::LoadedModule;

namespace {

// Why `lib` cannot take part in a handover; "" if it can.
std::string handover_problem(const Library& lib) {
    const ksp_handover* h = lib.handover;
    if (!h) return "no ksp_handover";
    if (h->size < offsetof(ksp_handover, end) + sizeof h->end)
        return "its ksp_handover is " + std::to_string(h->size) + " bytes, smaller than ABI 1.4's";
    if (!h->begin || !h->save || !h->restore || !h->end) return "its ksp_handover lacks a function";
    return "";
}

// The new version's instance type named like `old` ("SocketIO"), or NULL.
TypeObject* type_named(const Library& lib, const TypeObject* old) {
    for (Object* o : lib.types) {
        auto* t = static_cast<TypeObject*>(o);
        if (!t->is_enum && t->short_name == old->short_name) return t;
    }
    return nullptr;
}

// The module object keeps its identity and takes the new version's attributes; then the
// old version is torn down: the old way at once (its teardown ends the calls in
// progress), after a handover once the calls returning through its code are done.
// Shared by a committed handover (`live`) and a reload the old way.
void switch_module(LoadedModule& entry, LoadedModule& fresh, bool live) {
    adopt_members(static_cast<ModuleObject*>(entry.module), static_cast<ModuleObject*>(fresh.module));
    decref(fresh.module);
    fresh.module = nullptr;
    std::shared_ptr<Library> old = std::exchange(entry.lib, std::move(fresh.lib));
    if (live) detail::tear_down_when_idle(*old, entry.lib);
    else detail::tear_down_library(*old);
}

// The message of the error a plugin function raised, or what it did instead.
std::string refusal(const char* function) {
    if (error_occurred()) return take_error().message;
    return std::string(function) + " failed without raising an error";
}

struct Restored {
    InstanceObject* inst;  // a reference held for the whole handover
    TypeObject* new_type = nullptr;
    void* new_payload = nullptr;
    bool done = false;     // restore returned new_payload
};

// One handover from `entry`'s library to `fresh`'s (both have a usable ksp_handover).
class Handover {
public:
    Handover(LoadedModule& entry, LoadedModule& fresh)
        : entry_(entry), fresh_(fresh), old_(*entry.lib), new_(*fresh.lib), path_(new_.source_path) {}

    ~Handover() {
        for (Restored& r : objects_) decref(r.inst);
    }

    // Throws ScriptError after rolling back.
    size_t run() {
        old_.handovers_begun++;
        if (!begin()) fail("begin", refusal("begin"));
        // Hold every instance: a plugin function run below must not free one under us.
        for (InstanceLink* l = old_.instances.next; l != &old_.instances; l = l->next) {
            auto* inst = static_cast<InstanceObject*>(l);
            incref(inst);
            objects_.push_back(Restored{inst});
        }
        for (Restored& r : objects_) move(r);
        commit();
        return objects_.size();
    }

    // The rollback for a new version that failed to load: the old one is told it ends.
    static void end_refused(Library& old) {
        LibraryCall in(&old);
        call_end(old, 0);
    }

private:
    bool begin() {
        LibraryCall in(&old_);
        clear_error();
        try {
            return old_.handover->begin(old_.ctx) == 0 && !error_occurred();
        } catch (...) {
            clear_error();
            raise(KSP_ERR_ERROR, "begin let a C++ exception escape");
            return false;
        }
    }

    // save, then restore into the new version's type of the same name.
    void move(Restored& r) {
        TypeObject* old_type = r.inst->type;
        const std::string what = old_type->qualified_name;
        r.new_type = type_named(new_, old_type);
        if (!r.new_type) fail("restore of " + what, "the new version has no type '" + old_type->short_name + "'");

        ksp_value state = nullptr;
        {
            LibraryCall in(&old_);
            clear_error();
            try {
                state = old_.handover->save(old_.ctx, as_val(old_type), r.inst->payload);
            } catch (...) {
                state = nullptr;
                clear_error();
                raise(KSP_ERR_ERROR, "save let a C++ exception escape");
            }
        }
        if (!state || error_occurred()) {
            std::string why = refusal("save");
            decref(state);
            fail("save of " + what, why);
        }
        if (as_obj(state)->kind != ObjKind::Bytes) {
            std::string got = as_obj(state)->type_name();
            decref(state);
            fail("save of " + what, "save returned a " + got + ", not bytes");
        }

        {
            LibraryCall in(&new_);
            clear_error();
            try {
                r.new_payload = new_.handover->restore(new_.ctx, as_val(r.new_type), state);
                r.done = true;
            } catch (...) {
                clear_error();
                raise(KSP_ERR_ERROR, "restore let a C++ exception escape");
            }
        }
        decref(state);
        if (!r.done || error_occurred()) fail("restore of " + what, refusal("restore"));
    }

    void commit() {
        {
            LibraryCall in(&old_);
            call_end(old_, 1);
        }
        for (Restored& r : objects_) {
            InstanceObject* inst = r.inst;
            TypeObject* old_type = inst->type;
            void* old_payload = inst->payload;
            old_.instance_gone(inst);  // not torn down yet: nothing is unmapped here
            incref(r.new_type);
            inst->type = r.new_type;
            inst->payload = r.new_payload;
            new_.instance_born(inst);
            finalize_payload(old_type, old_payload);
            // Calls still returning through the old code use its types: keep them
            // (the instance's reference moves there) until that code is unmapped.
            bool kept = false;
            for (Object* t : old_.retired_types) kept = kept || t == old_type;
            if (kept) decref(old_type);
            else old_.retired_types.push_back(old_type);
        }
        switch_module(entry_, fresh_, true);
    }

    [[noreturn]] void fail(const std::string& step, const std::string& why) {
        const std::string version = old_.version;
        for (Restored& r : objects_)
            if (r.done) finalize_payload(r.new_type, r.new_payload);
        detail::unload_plugin(fresh_);
        end_refused(old_);
        throw ScriptError(KSP_ERR_IMPORT, "live reload of '" + old_.name + "' from " + path_ + " failed at " + step +
                                              ": " + why + "; version '" + version + "' keeps serving");
    }

    static void call_end(Library& lib, int committed) {
        try {
            lib.handover->end(lib.ctx, committed);
        } catch (...) {
            fatal("end of module '" + lib.name + "' let a C++ exception escape");
        }
        clear_error();  // end cannot report errors
    }

    LoadedModule& entry_;
    LoadedModule& fresh_;
    Library& old_;
    Library& new_;
    const std::string path_;
    std::vector<Restored> objects_;
};

}  // namespace

ReloadResult Host::reload_live(const std::string& name) {
    HostState& st = *state_;
    ReloadResult result;
    auto it = st.modules.find(name);
    if (it == st.modules.end()) {
        result.module = import(name);
        result.message = "'" + name + "' was not loaded: imported version '" + st.modules[name].lib->version + "'";
        return result;
    }
    LoadedModule& entry = it->second;
    result.module = Value::borrow(as_val(entry.module));
    const std::string old_version = entry.lib->version;
    const bool host_has_handover = st.options.abi_minor >= 4;
    const std::string old_problem = host_has_handover ? handover_problem(*entry.lib) : "";

    LoadedModule fresh;
    if (!detail::load_plugin(st, name, fresh)) {
        std::string why = take_error().message;
        if (host_has_handover && old_problem.empty()) Handover::end_refused(*entry.lib);
        throw ScriptError(KSP_ERR_IMPORT, "live reload of '" + name + "' failed at load: " + why + "; version '" +
                                              old_version + "' keeps serving");
    }
    const std::string new_version = fresh.lib->version;
    const std::string path = fresh.lib->source_path;

    std::string why_not;
    if (!host_has_handover)
        why_not = "this host presents ABI " + std::to_string(KSP_ABI_MAJOR) + "." +
                  std::to_string(st.options.abi_minor) + ", which has no live reload";
    else if (!old_problem.empty())
        why_not = "version '" + old_version + "' of '" + name + "' cannot hand its objects over (" + old_problem + ")";
    else if (std::string p = handover_problem(*fresh.lib); !p.empty())
        why_not = "version '" + new_version + "' of '" + name + "' from " + path + " cannot take objects over (" +
                  p + ")";
    if (!why_not.empty()) {
        const size_t closed = entry.lib->live_instances.load();
        switch_module(entry, fresh, false);
        result.message = why_not + ": reloaded by closing its objects (" + std::to_string(closed) + " open)";
        return result;
    }

    Handover handover(entry, fresh);
    result.moved = handover.run();
    result.live = true;
    result.message = "version '" + old_version + "' of '" + name + "' handed " + std::to_string(result.moved) +
                     " objects over to version '" + new_version + "' from " + path;
    return result;
}

}  // namespace refhost
