// elf_check.hpp - refuses files that dlopen() would choke on: a file cut short or not
// yet written (hosts/common/plugin_file.h says how) gives an ordinary ImportError.
#ifndef REFHOST_ELF_CHECK_HPP
#define REFHOST_ELF_CHECK_HPP

#include <cstdint>
#include <string>

namespace refhost {

// Empty if the file at `fd` looks like a complete shared object for this process,
// otherwise what is wrong with it.
std::string elf_problem(int fd);

// The usual name of an ELF e_machine value ("x86_64", "aarch64", ...).
std::string elf_machine_name(uint16_t machine);

}  // namespace refhost

#endif
