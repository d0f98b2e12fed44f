// abi_table.hpp - the ksp_host table the host hands to every plugin's init.
#ifndef REFHOST_ABI_TABLE_HPP
#define REFHOST_ABI_TABLE_HPP

#include <cstdint>

#include "ksp/plugin_abi.h"

namespace refhost {

// The table as a host of ABI 1.`minor` hands it out: `abi_minor` is `minor`, `size` ends
// where the first newer entry begins, and the newer entries are NULL, so KSP_HOST_HAS is
// false for them. `minor` must be at most KSP_ABI_MINOR (Host's constructor checks).
const ksp_host* abi_table(uint16_t minor = KSP_ABI_MINOR);

}  // namespace refhost

#endif
