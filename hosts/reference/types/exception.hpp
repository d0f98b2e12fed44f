// exception.hpp - exception objects: an error kind and a message, as a script sees
// a caught error. (The thread's current error itself is kept in errors.cpp.)
#ifndef REFHOST_TYPES_EXCEPTION_HPP
#define REFHOST_TYPES_EXCEPTION_HPP

#include <string>

#include "errors.hpp"
#include "object.hpp"

namespace refhost {

struct ExceptionObject final : Object {
    ExceptionObject(ksp_error_kind k, std::string m) : Object(ObjKind::Exception), error_kind(k), message(std::move(m)) {}
    std::string type_name() const override { return error_kind_name(error_kind); }
    const ksp_error_kind error_kind;
    const std::string message;
};

inline ksp_value make_exception(ksp_error_kind kind, std::string message) {
    return as_val(new ExceptionObject(kind, std::move(message)));
}

}  // namespace refhost

#endif
