// ksnet/io_chunk.hpp - how much one receive takes in at the most.
#pragma once

#include <cstddef>

namespace ksnet {

// The most one receive takes in, for every kind: a stream's recv() and read(n), the
// step by which a line buffer grows, the loop's read slab, a datagram's buffer (the
// largest UDP datagram, 65,535 bytes, fits).
inline constexpr size_t kIoChunk = 64 * 1024;

}  // namespace ksnet
