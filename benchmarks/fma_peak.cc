// This core's fp32 multiply-add throughput, GFLOP/s: the arithmetic ceiling a training's rate is
// a fraction of, which a library's large matmul does not always reach.
//
// benchmarks/engines.py builds it for the native kernels' own target (the vector width follows
// the compiler's macros) and runs one copy per core at the same time. Twelve independent chains
// of vector multiply-adds keep two pipelines of four cycles' latency busy; each chain converges
// to 2, so no operand is ever subnormal (which would fall back to microcode).
//
//   c++ -O2 -ffp-contract=fast -march=native benchmarks/fma_peak.cc -o /tmp/fma_peak
//   /tmp/fma_peak     # prints GFLOP/s and the floats per vector

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
constexpr int kChains = 12;

typedef float Vector __attribute__((vector_size(kLanes * sizeof(float))));

// `rounds` rounds of one multiply-add per chain; returns a sum, so that none is optimized away.
float Run(long rounds, float scale, float offset) {
  Vector chains[kChains];
  for (int i = 0; i < kChains; ++i) chains[i] = Vector{} + static_cast<float>(i);
  const Vector a = Vector{} + scale, b = Vector{} + offset;
  for (long round = 0; round < rounds; ++round) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) chains[i] = chains[i] * a + b;
  }
  float sum = 0.0f;
  for (int i = 0; i < kChains; ++i) sum += chains[i][0];
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  // Read at run time, so that the compiler cannot fold the chains into constants.
  const float scale = argc > 2 ? std::strtof(argv[1], nullptr) : 0.5f;
  const float offset = argc > 2 ? std::strtof(argv[2], nullptr) : 1.0f;
  long rounds = 1 << 20;
  double best = 0.0, checksum = 0.0;
  for (int trial = 0; trial < 5;) {
    const auto began = std::chrono::steady_clock::now();
    checksum += Run(rounds, scale, offset);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    if (took < 0.2) {  // too short to time well: more rounds, and this trial again
      rounds *= 2;
      continue;
    }
    const double rate = 2.0 * kLanes * kChains * rounds / took / 1e9;
    if (rate > best) best = rate;
    ++trial;
  }
  std::printf("%.3f %d %.0f\n", best, kLanes, checksum);
  return 0;
}
