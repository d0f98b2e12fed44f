// elf_check.cpp - header sanity checks before dlopen().
#include "elf_check.hpp"

#include <link.h>  // ElfW(): the ELF types of this process's word size
#include <sys/stat.h>
#include <unistd.h>

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

constexpr unsigned char kNativeClass = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
constexpr unsigned char kNativeData = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;

std::string past_end(const char* what, uint64_t end, uint64_t size) {
    return std::string("truncated: ") + what + " ends at byte " + std::to_string(end) + " but the file has " +
           std::to_string(size) + " bytes";
}

}  // namespace

std::string elf_problem(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return std::string("cannot stat: ") + std::strerror(errno);
    const auto size = static_cast<uint64_t>(st.st_size);
    ElfW(Ehdr) eh;
    if (size < sizeof eh || !read_at(fd, &eh, sizeof eh, 0)) return "too short to be an ELF file";
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return "not an ELF file (bad magic number)";
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
