// describe.hpp - a module as text, for people (`ksphost describe net`).
#ifndef REFHOST_DESCRIBE_HPP
#define REFHOST_DESCRIBE_HPP

#include <string>

#include "library.hpp"
#include "object.hpp"

namespace refhost {

struct ModuleObject;

// `lib` may be NULL (a module not made by a loaded plugin). May raise (a member's repr).
bool describe_module(const ModuleObject* module, const Library* lib, std::string& out);

}  // namespace refhost

#endif
