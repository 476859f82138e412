// Products out (rows, n) [+]= a (rows, k) b (k, n), all row-major and contiguous, by a b that is
// the same for a whole pass over a sequence: the recurrence's per-step product (few rows, a share
// of the batch) and, a few steps at a time, the input projection and the inputs' gradient.
//
// Eigen's general product copies ("packs") b into its own layout on every call: at every time
// step, the whole recurrent kernel. Here b is laid out once per pass over a sequence, in strips
// of `kTileWidth` columns whose k rows are contiguous: a tile of `kRows` rows by `kColumns`
// vectors of `out` stays in registers while p runs over k, each a(r, p) broadcast against the
// strip's row p. In b's own layout those row segments are n floats apart, which maps them onto a
// few sets of the first-level cache, where they evict each other between the tiles that share
// them. Each output is summed over p in order, whatever the buffers' addresses (a result can
// differ from Eigen's in the last bits; the self-test compares both paths with the cells'
// equations). Widths that are not whole tiles go to Eigen, with b in place.

#ifndef TF_SINE_NATIVE_PRODUCTS_H_
#define TF_SINE_NATIVE_PRODUCTS_H_

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

#include "Eigen/Core"

namespace tf_sine {
namespace products {

// Floats per vector register, and how many vectors a row of a tile spans: the tile's
// kRows * kColumns accumulators, kColumns row segments of b and a broadcast must fit in the
// registers (32 with AVX-512 and on ARMv8, 16 with AVX2 and SSE).
#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kColumns = 4;
#elif defined(__AVX__)
constexpr int kLanes = 8;
constexpr int kColumns = 2;
#elif defined(__aarch64__)
constexpr int kLanes = 4;
constexpr int kColumns = 4;
#else
constexpr int kLanes = 4;
constexpr int kColumns = 2;
#endif
constexpr int kRows = 6;
constexpr int64_t kTileWidth = kColumns * kLanes;
// Rows of `a` the strips pass over before the next ones: the LSTM's chunk of a few steps (cells.h's
// CachedSteps) in one block, a longer run of rows in several that each stay in the core's cache.
constexpr int64_t kBlockRows = 128;

typedef float Vector __attribute__((vector_size(kLanes * sizeof(float))));
// may_alias: the vectors are loaded from and stored to float arrays, as Intel's __m512_u are.
typedef float UnalignedVector
    __attribute__((vector_size(kLanes * sizeof(float)), aligned(alignof(float)), may_alias));

inline Vector Load(const float* p) { return *reinterpret_cast<const UnalignedVector*>(p); }
inline void Store(float* p, Vector v) { *reinterpret_cast<UnalignedVector*>(p) = v; }

// Loads and stores of one float or of one vector, so that one body serves a row's vector loop
// and its scalar tail (cells.h).
template <typename Lanes>
inline Lanes LoadLanes(const float* p) {
  if constexpr (std::is_same_v<Lanes, float>) {
    return *p;
  } else {
    return Load(p);
  }
}
template <typename Lanes>
inline void StoreLanes(float* p, Lanes value) {
  if constexpr (std::is_same_v<Lanes, float>) {
    *p = value;
  } else {
    Store(p, value);
  }
}

// One tile: out[0:Rows, 0:kTileWidth] (rows `n` apart) of a[0:Rows, 0:k] (rows k apart) times
// one strip of b (k rows of kTileWidth floats, contiguous).
template <int Rows>
inline void Tile(const float* a, int64_t k, const float* strip, float* out, int64_t n, bool accumulate) {
  // Every loop over the accumulators unrolled: one left rolled makes GCC keep them in a stack
  // array, zeroed with `rep stos` and spilled and reloaded around the epilogue, a cost each tile
  // pays once, which short products (k = 128) feel.
  Vector sum[Rows][kColumns];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < kColumns; ++q) sum[r][q] = Vector{};
  }
  for (int64_t p = 0; p < k; ++p) {
    Vector segment[kColumns];
    for (int q = 0; q < kColumns; ++q) segment[q] = Load(strip + p * kTileWidth + q * kLanes);
    for (int r = 0; r < Rows; ++r) {
      const float scalar = a[r * k + p];
      for (int q = 0; q < kColumns; ++q) sum[r][q] += scalar * segment[q];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
    float* row = out + r * n;
#pragma GCC unroll 4
    for (int q = 0; q < kColumns; ++q) {
      Store(row + q * kLanes, accumulate ? Load(row + q * kLanes) + sum[r][q] : sum[r][q]);
    }
  }
}

// A tile of `rows` (1..kRows) rows.
inline void TileOf(int64_t rows, const float* a, int64_t k, const float* strip, float* out, int64_t n,
                   bool accumulate) {
  switch (rows) {
    case 6: return Tile<6>(a, k, strip, out, n, accumulate);
    case 5: return Tile<5>(a, k, strip, out, n, accumulate);
    case 4: return Tile<4>(a, k, strip, out, n, accumulate);
    case 3: return Tile<3>(a, k, strip, out, n, accumulate);
    case 2: return Tile<2>(a, k, strip, out, n, accumulate);
    case 1: return Tile<1>(a, k, strip, out, n, accumulate);
    default: return;
  }
}
static_assert(kRows == 6, "TileOf dispatches up to 6 rows");

}  // namespace products

// True where `StepProduct` takes the tiles: `n` output columns make whole tiles.
inline bool Tiled(int64_t n) { return n % products::kTileWidth == 0; }

// out (rows, n) = a (rows, k) b (k, n), or out += a b, for many `a` and one `b`.
class StepProduct {
 public:
  // `b` is a row-major (k, n) array or, when `transposed`, the transpose of a row-major (n, k)
  // one (the backward pass's R^T, read from R); it must outlive this object. `uses` is how many
  // products will read it: none (a sequence of one step, a gradient not wanted) lays nothing out.
  StepProduct(const float* b, int64_t k, int64_t n, int64_t uses, bool transposed = false)
      : b_(b), k_(k), n_(n), transposed_(transposed) {
    if (!Tiled(n) || uses < 1 || k * n == 0) return;
    using products::kTileWidth;
    const int64_t bytes = (k * n * static_cast<int64_t>(sizeof(float)) + 63) / 64 * 64;  // as aligned_alloc asks
    strips_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!strips_) throw std::bad_alloc();
    for (int64_t j = 0; j < n; j += kTileWidth) {
      float* strip = strips_.get() + j * k;
      for (int64_t p = 0; p < k; ++p) {
        for (int64_t q = 0; q < kTileWidth; ++q) {
          strip[p * kTileWidth + q] = transposed ? b[(j + q) * k + p] : b[p * n + j + q];
        }
      }
    }
  }

  void operator()(const float* a, int64_t rows, float* out, bool accumulate) const {
    if (!strips_) return ByEigen(a, rows, out, accumulate);
    // A block of rows at a time, every strip passing over it: a whole sequence's rows (the GRU's
    // and SimpleRNN's projection) would otherwise be read again from far caches for each strip.
    for (int64_t first = 0; first < rows; first += products::kBlockRows) {
      Block(a + first * k_, std::min(products::kBlockRows, rows - first), out + first * n_, accumulate);
    }
  }

 private:
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };

  void Block(const float* a, int64_t rows, float* out, bool accumulate) const {
    using products::kRows;
    using products::kTileWidth;
    for (int64_t j = 0; j < n_; j += kTileWidth) {
      const float* strip = strips_.get() + j * k_;
      // As few tiles as kRows allows, their rows as even as can be (16 rows: 6 + 5 + 5, not
      // 6 + 6 + 4): a tile of fewer rows keeps fewer multiply-adds in flight, and the shortest
      // is the slowest per row.
      const int64_t tiles = (rows + kRows - 1) / kRows;
      for (int64_t t = 0, i = 0; t < tiles; ++t) {
        const int64_t tile_rows = rows / tiles + (t < rows % tiles ? 1 : 0);
        products::TileOf(tile_rows, a + i * k_, k_, strip, out + i * n_ + j, n_, accumulate);
        i += tile_rows;
      }
    }
  }

  void ByEigen(const float* a, int64_t rows, float* out, bool accumulate) const {
    Eigen::Map<Matrix> result(out, rows, n_);
    const Eigen::Map<const Matrix> left(a, rows, k_);
    if (transposed_) {
      Assign(result, left * Eigen::Map<const Matrix>(b_, n_, k_).transpose(), accumulate);
    } else {
      Assign(result, left * Eigen::Map<const Matrix>(b_, k_, n_), accumulate);
    }
  }

  template <typename Product>
  static void Assign(Eigen::Map<Matrix>& result, const Product& product, bool accumulate) {
    if (accumulate) {
      result.noalias() += product;
    } else {
      result.noalias() = product;
    }
  }

  const float* b_;
  int64_t k_, n_;
  bool transposed_;
  std::unique_ptr<float[], Free> strips_;  // 64-byte aligned: no vector load splits a cache line
};

}  // namespace tf_sine

#endif  // TF_SINE_NATIVE_PRODUCTS_H_
