// splitmix64: the one small generator behind every synthetic weight (demo model, bench models,
// synthetic T5 and VAE). Fast and deterministic per state, so a seed always gives the same bytes;
// not used for sampling noise (that is the Mersenne Twister of pipeline/t2v.h).
#pragma once

#include <cstdint>

namespace wanrt {

// Advances state by the golden-ratio increment and returns the mixed 64-bit value (Steele, Lea
// and Flood's SplitMix64 finaliser).
inline uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace wanrt
