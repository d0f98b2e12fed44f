// elf_check.hpp - refuses files that dlopen() would choke on.
//
// A truncated shared object can still have valid headers: dlopen() then maps segments
// that extend past the end of the file and the process dies of SIGBUS when the loader
// touches them. Checking the headers against the file size first turns that into an
// ordinary ImportError.
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
