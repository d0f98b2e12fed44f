// ops.hpp - what the interpreter does with values: attribute lookup, calls, iteration.
// Every call into plugin code is counted on its library (LibraryCall) and checked: the
// plugin must follow the ABI's rules, and violations become visible errors.
//
// Each function returns a new reference, or NULL after raising (ABI convention).
#ifndef REFHOST_OPS_HPP
#define REFHOST_OPS_HPP

#include <cstdint>
#include <string>
#include <string_view>

#include "object.hpp"

namespace refhost {

struct TypeObject;
struct Method;

ksp_value getattr(ksp_value obj, std::string_view name);
ksp_value call(ksp_value callable, size_t nargs, const ksp_value* args);
// Same as call(getattr(obj, name), ...) without making a method object.
ksp_value call_method(ksp_value obj, std::string_view name, size_t nargs, const ksp_value* args);

// `for x in obj`: iter() once, then next() until it returns NULL with KSP_ERR_STOP_ITER.
ksp_value iter(ksp_value obj);
ksp_value next(ksp_value iterator);

// Calls method `m` of `owner` with `self`, refusing if owner's plugin was unloaded.
// Follows `self` to a new version of its plugin (live reload): a method bound before
// the reload, or a call that returned KSP_ERR_MOVED, is called again by name.
ksp_value call_bound(const TypeObject* owner, const Method* m, ksp_value self, size_t nargs,
                     const ksp_value* args);

// ksp_host.call_began_ns: when the script's call running on this thread began, read
// from the clock the first time a plugin asks during that call, and kept across the
// tries call_bound makes after KSP_ERR_MOVED. Outside a native call: now.
int64_t call_began_ns();

}  // namespace refhost

#endif
