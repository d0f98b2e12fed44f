// abi_table.hpp - the ksp_host table the host hands to every plugin's init.
#ifndef REFHOST_ABI_TABLE_HPP
#define REFHOST_ABI_TABLE_HPP

#include "ksp/plugin_abi.h"

namespace refhost {

const ksp_host* abi_table();

}  // namespace refhost

#endif
