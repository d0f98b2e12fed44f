// elf_check.cpp - header sanity checks before dlopen().
#include "elf_check.hpp"

#include <link.h>  // ElfW(): the ELF types of this process's word size
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace refhost {

namespace {

bool read_at(int fd, void* buf, size_t len, off_t offset) {
    auto* p = static_cast<char*>(buf);
    while (len) {
        ssize_t n = pread(fd, p, len, offset);
        if (n <= 0) return false;
        p += n;
        len -= static_cast<size_t>(n);
        offset += n;
    }
    return true;
}

// The CPU this process runs on, as ELF names it.
#if defined(__x86_64__)
constexpr uint16_t kNativeMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kNativeMachine = EM_AARCH64;
#elif defined(__i386__)
constexpr uint16_t kNativeMachine = EM_386;
#elif defined(__arm__)
constexpr uint16_t kNativeMachine = EM_ARM;
#elif defined(__riscv)
constexpr uint16_t kNativeMachine = EM_RISCV;
#elif defined(__powerpc64__)
constexpr uint16_t kNativeMachine = EM_PPC64;
#elif defined(__s390x__)
constexpr uint16_t kNativeMachine = EM_S390;
#else
#define REFHOST_UNKNOWN_MACHINE 1
#endif

// e_machine sits at the same offset in 32- and 64-bit headers, in the file's byte order.
uint16_t file_machine(const unsigned char* header) {
    const unsigned char* m = header + offsetof(ElfW(Ehdr), e_machine);
    return header[EI_DATA] == ELFDATA2MSB ? uint16_t(m[0] << 8 | m[1]) : uint16_t(m[1] << 8 | m[0]);
}

constexpr unsigned char kNativeClass = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
constexpr unsigned char kNativeData = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;

std::string past_end(const char* what, uint64_t end, uint64_t size) {
    return std::string("truncated: ") + what + " ends at byte " + std::to_string(end) + " but the file has " +
           std::to_string(size) + " bytes";
}

}  // namespace

std::string elf_machine_name(uint16_t machine) {
    switch (machine) {
        case EM_X86_64: return "x86_64";
        case EM_AARCH64: return "aarch64";
        case EM_386: return "i386";
        case EM_ARM: return "arm";
        case EM_RISCV: return "riscv";
        case EM_PPC64: return "ppc64";
        case EM_PPC: return "ppc";
        case EM_S390: return "s390";
        case EM_MIPS: return "mips";
        case EM_LOONGARCH: return "loongarch";
        default: return "ELF machine " + std::to_string(machine);
    }
}

std::string elf_problem(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return std::string("cannot stat: ") + std::strerror(errno);
    const auto size = static_cast<uint64_t>(st.st_size);
    ElfW(Ehdr) eh;
    if (size < sizeof eh || !read_at(fd, &eh, sizeof eh, 0)) return "too short to be an ELF file";
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return "not an ELF file (bad magic number)";
#ifndef REFHOST_UNKNOWN_MACHINE
    // Before the class: a 32-bit ARM plugin on x86_64 is foremost built for another CPU.
    if (uint16_t machine = file_machine(reinterpret_cast<const unsigned char*>(&eh)); machine != kNativeMachine)
        return "built for " + elf_machine_name(machine) + ", this host is " + elf_machine_name(kNativeMachine);
#endif
    if (eh.e_ident[EI_CLASS] != kNativeClass) return "ELF class (32/64-bit) differs from this process";
    if (eh.e_ident[EI_DATA] != kNativeData) return "ELF byte order differs from this process";
    if (eh.e_type != ET_DYN) return "not a shared object (ELF type is not ET_DYN)";
    if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0) return "bad program header table";

    uint64_t ph_end = eh.e_phoff + uint64_t(eh.e_phnum) * eh.e_phentsize;
    if (ph_end > size) return past_end("the program header table", ph_end, size);
    std::vector<ElfW(Phdr)> ph(eh.e_phnum);
    if (!read_at(fd, ph.data(), ph.size() * sizeof(ElfW(Phdr)), static_cast<off_t>(eh.e_phoff)))
        return "cannot read the program headers";
    for (const auto& p : ph) {
        if (p.p_type != PT_LOAD && p.p_type != PT_DYNAMIC) continue;
        uint64_t end = p.p_offset + p.p_filesz;
        if (end > size) return past_end(p.p_type == PT_LOAD ? "a loadable segment" : "the dynamic section", end, size);
    }
    if (eh.e_shoff) {
        uint64_t sh_end = eh.e_shoff + uint64_t(eh.e_shnum) * eh.e_shentsize;
        if (sh_end > size) return past_end("the section header table", sh_end, size);
    }
    return {};
}

}  // namespace refhost
