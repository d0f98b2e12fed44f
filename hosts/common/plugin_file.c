/* plugin_file.c - see plugin_file.h. */
#define _GNU_SOURCE /* pread() under -std=c99 */
#include "plugin_file.h"

#include <elf.h>
#include <errno.h>
#include <link.h> /* ElfW(): the ELF types of this process's word size */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_at(int fd, void *buf, size_t len, uint64_t offset) {
    char *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)offset);
        if (n <= 0) return 0;
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 1;
}

uint16_t ksp_elf_native_machine(void) {
#if defined(__x86_64__)
    return EM_X86_64;
#elif defined(__aarch64__)
    return EM_AARCH64;
#elif defined(__i386__)
    return EM_386;
#elif defined(__arm__)
    return EM_ARM;
#elif defined(__riscv)
    return EM_RISCV;
#elif defined(__powerpc64__)
    return EM_PPC64;
#elif defined(__s390x__)
    return EM_S390;
#else
    return 0;
#endif
}

const char *ksp_elf_machine_name(uint16_t machine, char *buf, size_t cap) {
    const char *name = NULL;
    switch (machine) {
    case EM_X86_64: name = "x86_64"; break;
    case EM_AARCH64: name = "aarch64"; break;
    case EM_386: name = "i386"; break;
    case EM_ARM: name = "arm"; break;
    case EM_RISCV: name = "riscv"; break;
    case EM_PPC64: name = "ppc64"; break;
    case EM_PPC: name = "ppc"; break;
    case EM_S390: name = "s390"; break;
    case EM_MIPS: name = "mips"; break;
    case EM_LOONGARCH: name = "loongarch"; break;
    }
    if (name) snprintf(buf, cap, "%s", name);
    else snprintf(buf, cap, "ELF machine %u", (unsigned)machine);
    return buf;
}

/* e_machine sits at the same offset in 32- and 64-bit headers, in the file's byte order. */
static uint16_t file_machine(const unsigned char *header) {
    const unsigned char *m = header + offsetof(ElfW(Ehdr), e_machine);
    return header[EI_DATA] == ELFDATA2MSB ? (uint16_t)(m[0] << 8 | m[1]) : (uint16_t)(m[1] << 8 | m[0]);
}

static int past_end(char *err, size_t cap, const char *what, uint64_t end, uint64_t size) {
    snprintf(err, cap, "truncated: %s ends at byte %llu but the file has %llu bytes (still being written?)", what,
             (unsigned long long)end, (unsigned long long)size);
    return 1;
}

static int problem(char *err, size_t cap, const char *what) {
    snprintf(err, cap, "%s", what);
    return 1;
}

/* The dynamic section must end with DT_NULL and name the symbol and string tables that
 * every shared object with exported symbols has: all zeros, it is not written yet. */
static int dynamic_unfinished(int fd, const ElfW(Phdr) *dynamic) {
    size_t count = dynamic->p_filesz / sizeof(ElfW(Dyn));
    int symtab = 0, strtab = 0;
    for (size_t i = 0; i < count; i++) {
        ElfW(Dyn) d;
        if (!read_at(fd, &d, sizeof d, dynamic->p_offset + i * sizeof d)) return 1;
        if (d.d_tag == DT_NULL) return !(symtab && strtab);
        symtab |= d.d_tag == DT_SYMTAB;
        strtab |= d.d_tag == DT_STRTAB;
    }
    return 1;
}

int ksp_plugin_file_problem(int fd, char *err, size_t cap) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, cap, "cannot stat: %s", strerror(errno));
        return 1;
    }
    const uint64_t size = (uint64_t)st.st_size;
    ElfW(Ehdr) eh;
    if (size < sizeof eh || !read_at(fd, &eh, sizeof eh, 0)) return problem(err, cap, "too short to be an ELF file");
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return problem(err, cap, "not an ELF file (bad magic number)");
    /* Before the class: a 32-bit ARM plugin on x86_64 is foremost built for another CPU. */
    uint16_t machine = file_machine(eh.e_ident), native = ksp_elf_native_machine();
    if (native && machine != native) {
        char built[32], here[32];
        snprintf(err, cap, "built for %s, this host is %s", ksp_elf_machine_name(machine, built, sizeof built),
                 ksp_elf_machine_name(native, here, sizeof here));
        return 1;
    }
    if (eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32))
        return problem(err, cap, "ELF class (32/64-bit) differs from this process");
    if (eh.e_ident[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB))
        return problem(err, cap, "ELF byte order differs from this process");
    if (eh.e_type != ET_DYN) return problem(err, cap, "not a shared object (ELF type is not ET_DYN)");
    if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0) return problem(err, cap, "bad program header table");

    uint64_t end = (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * eh.e_phentsize;
    if (end > size) return past_end(err, cap, "the program header table", end, size);
    ElfW(Phdr) dynamic = {0};
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        ElfW(Phdr) ph;
        if (!read_at(fd, &ph, sizeof ph, eh.e_phoff + (uint64_t)i * sizeof ph))
            return problem(err, cap, "cannot read the program headers");
        if (ph.p_type != PT_LOAD && ph.p_type != PT_DYNAMIC) continue;
        end = (uint64_t)ph.p_offset + ph.p_filesz;
        if (end > size) return past_end(err, cap, ph.p_type == PT_LOAD ? "a loadable segment" : "the dynamic section", end, size);
        if (ph.p_type == PT_DYNAMIC) dynamic = ph;
    }
    if (eh.e_shoff) {
        end = (uint64_t)eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize;
        if (end > size) return past_end(err, cap, "the section header table", end, size);
    }
    if (dynamic.p_type != PT_DYNAMIC || dynamic_unfinished(fd, &dynamic))
        return problem(err, cap, "its dynamic section is missing or unfinished (still being written?)");
    return 0;
}
