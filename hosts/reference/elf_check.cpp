// elf_check.cpp - the shared plugin-file check (hosts/common/plugin_file.c), as strings.
#include "elf_check.hpp"

#include "plugin_file.h"

namespace refhost {

std::string elf_problem(int fd) {
    char err[512];
    return ksp_plugin_file_problem(fd, err, sizeof err) ? std::string(err) : std::string();
}

std::string elf_machine_name(uint16_t machine) {
    char name[32];
    return ksp_elf_machine_name(machine, name, sizeof name);
}

}  // namespace refhost
