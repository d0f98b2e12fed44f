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

/* 1 with `err` filled if `count` items of `each` bytes from `offset` do not lie within
 * `size` bytes (computed without overflow: a hostile header cannot wrap it). */
static int past_end(char *err, size_t cap, const char *what, uint64_t offset, uint64_t count, uint64_t each,
                    uint64_t size) {
    if (offset <= size && (each == 0 || count <= (size - offset) / each)) return 0;
    if (each && count > UINT64_MAX / each) count = UINT64_MAX / each;
    uint64_t end = offset + count * each < offset ? UINT64_MAX : offset + count * each;
    snprintf(err, cap, "truncated: %s ends at byte %llu but the file has %llu bytes (still being written?)", what,
             (unsigned long long)end, (unsigned long long)size);
    return 1;
}

static int problem(char *err, size_t cap, const char *what) {
    snprintf(err, cap, "%s", what);
    return 1;
}

/* No shared object comes near this many dynamic entries; a larger section is refused. */
#define KSP_DYNAMIC_MAX 4096

/* The dynamic section must end with DT_NULL and name the symbol and string tables that
 * every shared object with exported symbols has: all zeros, it is not written yet. */
static int dynamic_unfinished(int fd, const ElfW(Phdr) *dynamic) {
    size_t count = dynamic->p_filesz / sizeof(ElfW(Dyn));
    if (count == 0 || count > KSP_DYNAMIC_MAX) return 1;
    ElfW(Dyn) *entries = malloc(count * sizeof *entries);
    int unfinished = 1, symtab = 0, strtab = 0;
    if (entries && read_at(fd, entries, count * sizeof *entries, dynamic->p_offset)) {
        for (size_t i = 0; i < count; i++) {
            if (entries[i].d_tag == DT_NULL) {
                unfinished = !(symtab && strtab);
                break;
            }
            symtab |= entries[i].d_tag == DT_SYMTAB;
            strtab |= entries[i].d_tag == DT_STRTAB;
        }
    }
    free(entries);
    return unfinished;
}

/* The section header table, which linkers write last: its names' string table must be
 * one, within the file. Zeros there: the file is not finished. A file without section
 * headers (stripped of them on purpose) passes. */
static int section_headers_unfinished(int fd, const ElfW(Ehdr) *eh, uint64_t size) {
    if (!eh->e_shoff || eh->e_shnum == 0) return 0;
    if (eh->e_shentsize != sizeof(ElfW(Shdr)) || eh->e_shstrndx >= eh->e_shnum) return 1;
    ElfW(Shdr) names;
    if (!read_at(fd, &names, sizeof names, eh->e_shoff + (uint64_t)eh->e_shstrndx * sizeof names)) return 1;
    return names.sh_type != SHT_STRTAB || names.sh_offset > size || names.sh_size > size - names.sh_offset;
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

    if (past_end(err, cap, "the program header table", eh.e_phoff, eh.e_phnum, eh.e_phentsize, size)) return 1;
    ElfW(Phdr) dynamic = {0};
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        ElfW(Phdr) ph;
        if (!read_at(fd, &ph, sizeof ph, eh.e_phoff + (uint64_t)i * sizeof ph))
            return problem(err, cap, "cannot read the program headers");
        if (ph.p_type != PT_LOAD && ph.p_type != PT_DYNAMIC) continue;
        const char *what = ph.p_type == PT_LOAD ? "a loadable segment" : "the dynamic section";
        if (past_end(err, cap, what, ph.p_offset, ph.p_filesz, 1, size)) return 1;
        if (ph.p_type == PT_DYNAMIC) dynamic = ph;
    }
    if (eh.e_shoff && past_end(err, cap, "the section header table", eh.e_shoff, eh.e_shnum, eh.e_shentsize, size))
        return 1;
    if (dynamic.p_type != PT_DYNAMIC || dynamic_unfinished(fd, &dynamic))
        return problem(err, cap, "its dynamic section is missing or unfinished (still being written?)");
    if (section_headers_unfinished(fd, &eh, size))
        return problem(err, cap, "its section headers are unfinished (still being written?)");
    return 0;
}
