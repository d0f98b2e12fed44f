/* plugin_file.h - what every host checks in a plugin file before dlopen(), in C for
 * both hosts (the reference host is C++, the kscript adapter C).
 *
 * dlopen() trusts the file: one cut short (a copy still being written) maps segments
 * past its end, and the first touch of them is SIGBUS; one whose dynamic section is not
 * written yet (a linker that sized its output first) crashes the relocation. Either
 * would end the interpreter, where the check makes it an ordinary error naming why.
 * It is a check of the headers, not of every byte: a file with holes elsewhere passes.
 * Installing by rename (write a temporary file, then `mv` it over) is what is safe. */
#ifndef KSP_HOSTS_PLUGIN_FILE_H
#define KSP_HOSTS_PLUGIN_FILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 0 if the file open as `fd` looks like a whole shared object for this process;
 * otherwise 1, with what is wrong with it in `err` (`cap` bytes, NUL-terminated). */
int ksp_plugin_file_problem(int fd, char *err, size_t cap);

/* The usual name of an ELF e_machine value ("x86_64", "aarch64", ...) in `buf`. */
const char *ksp_elf_machine_name(uint16_t machine, char *buf, size_t cap);

/* The e_machine of the CPU this process runs on; 0 where it is not known. */
uint16_t ksp_elf_native_machine(void);

#ifdef __cplusplus
}
#endif

#endif
