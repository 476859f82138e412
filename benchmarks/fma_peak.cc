// This core's fp32 multiply-add throughput, GFLOP/s: the arithmetic ceiling a training's rate is
// a fraction of, which a library's large matmul does not always reach.
//
// benchmarks/engines.py builds it for the native kernels' own target (the vector width follows
// the compiler's macros) and runs one copy per core at the same time. Twelve independent chains
// of vector multiply-adds keep two pipelines of four cycles' latency busy; each chain converges
// to 2, so no operand is ever subnormal (which would fall back to microcode).
//
//   c++ -O2 -ffp-contract=fast -march=native benchmarks/fma_peak.cc -o /tmp/fma_peak
//   /tmp/fma_peak [ROUNDS]  # prints the median GFLOP/s of 5 trials, floats per vector, the
//                           # rounds of a trial and a checksum

#include <algorithm>
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
constexpr int kTrials = 5;  // the median is reported

// Read at run time (volatile), so that the compiler cannot fold the chains into constants.
volatile float scale = 0.5f, offset = 1.0f;

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
  // Without an argument, the rounds a trial takes at least 0.2 s are found first; engines.py
  // then gives every copy that count, so that all of them run their trials side by side.
  long rounds = argc > 1 ? std::atol(argv[1]) : 0;
  double checksum = 0.0;
  auto trial = [&](long count) {
    const auto began = std::chrono::steady_clock::now();
    checksum += Run(count, scale, offset);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  };
  if (rounds < 1) {
    for (rounds = 1 << 20; trial(rounds) < 0.2;) rounds *= 2;
  }
  double rates[kTrials];
  for (double& rate : rates) rate = 2.0 * kLanes * kChains * rounds / trial(rounds) / 1e9;
  std::sort(rates, rates + kTrials);
  std::printf("%.3f %d %ld %.0f\n", rates[kTrials / 2], kLanes, rounds, checksum);
  return 0;
}
