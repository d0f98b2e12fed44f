// repr.hpp - text of values: repr() (quotes for str, b'..' for bytes, as Python) and
// the "str of" form used by printf's %s (a str as itself, anything else as its repr).
#ifndef REFHOST_REPR_HPP
#define REFHOST_REPR_HPP

#include <string>
#include <string_view>

#include "object.hpp"

namespace refhost {

// Append the text to `out`; false after raising (an instance's __repr may fail).
bool repr_into(ksp_value v, std::string& out);
bool str_into(ksp_value v, std::string& out);

ksp_value repr_value(ksp_value v);  // a new str, or NULL after raising

std::string quote_str(const std::string& utf8);
std::string quote_bytes(std::string_view data);
std::string format_float(double d);

}  // namespace refhost

#endif
