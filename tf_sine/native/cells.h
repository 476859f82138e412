// The recurrent layers' math on plain arrays, shared by the per-layer ops and the training op
// (rnn_ops.cc): a Keras LSTM, GRU or SimpleRNN layer forward over a whole time-major sequence,
// and its gradient. No TensorFlow here: callers own every buffer.
//
// The functions are the Keras layers with their defaults, zero initial state:
//   LSTM:      z = x K + h R + b split (i, f, c, o); c' = f c + i tanh(c~); h' = o tanh(c').
//   GRU:       (reset_after) x K + b_in and h R + b_rec split (z, r, h);
//              h' = z h + (1 - z) tanh(x_h + r (h R_h + b_rec_h)).
//   SimpleRNN: h' = tanh(x K + h R + b).
// The input projection x K of many time steps is one matrix product ahead of the recurrence,
// and the weight gradients are one product each behind it (the LSTM's a few steps at a time,
// while they are in cache: CachedSteps), so the sequential part is one small product per step
// (products.h) and one pass of vectorized elementwise math.

#ifndef TF_SINE_NATIVE_CELLS_H_
#define TF_SINE_NATIVE_CELLS_H_

#include <algorithm>
#include <cstdint>

#include "Eigen/Core"
#include "products.h"

namespace tf_sine {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;
using Array = Eigen::Map<Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// Shapes of one layer's call. `gate_count` blocks of `units` columns make the kernels' width:
// 4 for LSTM, 3 for GRU, 1 for SimpleRNN.
struct Dims {
  int64_t time, batch, features, units, gate_count;
  int64_t gates() const { return gate_count * units; }
  int64_t rows() const { return time * batch; }
};

// One layer's weights, as Keras stores them (row-major): kernel (F, width), recurrent kernel
// (u, width), bias (width) or, for the GRU, (2, width): input bias then recurrent bias.
struct Weights {
  const float *kernel, *recurrent, *bias;
};

// The gradients of one layer. `inputs` may be null: the first layer's is not needed.
struct Gradients {
  float *inputs, *kernel, *recurrent, *bias;
};

// The input projection of time steps [first, first + count): (count * B, width) rows of
// inputs K + bias, into `out`'s rows of those steps. `through_kernel` is the product by K.
inline void ProjectInputs(const float* inputs, const StepProduct& through_kernel, const float* bias, const Dims& d,
                          int64_t first, int64_t count, float* out) {
  // The bias first and the product added to it, as Eigen's `x K + b` would sum them.
  const int64_t rows = count * d.batch, skipped = first * d.batch;
  const Eigen::Map<const Eigen::RowVectorXf> bias_row(bias, d.gates());
  MatrixMap(out + skipped * d.gates(), rows, d.gates()).rowwise() = bias_row;
  through_kernel(inputs + skipped * d.features, rows, out + skipped * d.gates(), true);
}

// How many time steps the LSTM handles at a time outside the recurrence: the forward pass
// projects their inputs, and the backward pass takes their weight gradients, while their
// gates' rows stay in the core's cache, when a whole sequence's would not (the gates of all
// steps, kept for the backward pass, then leave the cache once rather than three times).
inline int64_t CachedSteps(const Dims& d) {
  constexpr int64_t kFloats = 1 << 16;  // a quarter of a typical 1 MiB second-level cache
  return std::max<int64_t>(1, kFloats / std::max<int64_t>(1, d.batch * d.gates()));
}

// How many pieces of at most `chunk` steps make `time` steps.
inline int64_t Chunks(int64_t time, int64_t chunk) { return (time + chunk - 1) / chunk; }

// The product by K^T that takes the inputs' gradient, for `uses` pieces of a sequence; none is
// laid out where that gradient is not wanted (the first layer's).
inline StepProduct InputGradientProduct(const Weights& w, const Dims& d, int64_t uses, const Gradients& grads) {
  return StepProduct(w.kernel, d.gates(), d.features, grads.inputs != nullptr ? uses : 0, true);
}

// The gradients of the inputs and of both kernels from time steps [first, first + count), one
// product each: the whole sequence after the backward recurrence, or a few steps at a time
// while their gradients are still in the core's cache (`accumulate` adds to the kernels'
// gradients of later steps). `input_side` (count * B, width), the rows of those steps, is the
// gradient of x K + b_in, and `recurrent_side` that of h R (the same array except in the GRU,
// whose reset gate sits between h R_h and the candidate); the initial state is zero, so step 0
// adds nothing to R's. `through_kernel_t` is the product by K^T (the inputs' gradient).
inline void InputAndKernelGradients(const float* inputs, const StepProduct& through_kernel_t, const float* states,
                                    const float* input_side, const float* recurrent_side, const Dims& d,
                                    int64_t first, int64_t count, bool accumulate, const Gradients& grads) {
  const int64_t width = d.gates(), rows = count * d.batch, skipped = first * d.batch;
  const int64_t later = first > 0 ? rows : rows - d.batch;  // rows of steps after step 0
  ConstMatrixMap input_grads(input_side, rows, width);
  MatrixMap kernel_grad(grads.kernel, d.features, width), recurrent_grad(grads.recurrent, d.units, width);
  const auto inputs_part = ConstMatrixMap(inputs + skipped * d.features, rows, d.features).transpose();
  const int64_t states_from = skipped + rows - later - d.batch;  // the steps before those of `later`
  const auto states_part = ConstMatrixMap(states + states_from * d.units, later, d.units).transpose();
  const ConstMatrixMap recurrent_grads(recurrent_side + (rows - later) * width, later, width);
  if (accumulate) {
    kernel_grad.noalias() += inputs_part * input_grads;
    recurrent_grad.noalias() += states_part * recurrent_grads;
  } else {
    kernel_grad.noalias() = inputs_part * input_grads;
    recurrent_grad.noalias() = states_part * recurrent_grads;
  }
  if (grads.inputs != nullptr) through_kernel_t(input_side, rows, grads.inputs + skipped * d.features, false);
}

// Sums the rows of a (rows, width) array into `out` (a bias gradient).
inline void SumRows(const float* values, int64_t rows, int64_t width, float* out) {
  Eigen::Map<Eigen::RowVectorXf>(out, width).noalias() = ConstMatrixMap(values, rows, width).colwise().sum();
}

// sigmoid(z) = 0.5 + 0.5 tanh(z / 2): one vectorized tanh pass can then activate whole
// contiguous rows of mixed sigmoid and tanh columns, instead of column blocks with ragged ends.
// `scale` and `offset` (per column) are 0.5 for a sigmoid column, 1 and 0 for a tanh column.
inline void Activate(float* values, int64_t width, const Eigen::ArrayXf& scale, const Eigen::ArrayXf& offset) {
  Eigen::Map<Eigen::ArrayXf> z(values, width);
  z = offset + scale * (scale * z).tanh();
}

inline void Sigmoid(float* values, int64_t width) {
  Eigen::Map<Eigen::ArrayXf> z(values, width);
  z = 0.5f + 0.5f * (0.5f * z).tanh();
}

// --- LSTM --------------------------------------------------------------------------------------
// Forward: states, cells, cell_tanh (T, B, u) and the activated gates (T, B, 4u).
// Backward scratch: (min(T, CachedSteps), B, 4u) + 2 (B, u) floats.

inline int64_t LstmScratch(const Dims& d) {
  return std::min(CachedSteps(d), d.time) * d.batch * d.gates() + 2 * d.batch * d.units;
}

// The new cell state of one row, c = f c_previous + i g, from the activated gates `z` (4u).
// `HasPrevious` is false at the first step, whose previous state is zero: there f * 0 rather
// than 0, so that a NaN gate spreads as it does in Keras. The branch is resolved at compile
// time and `__restrict` rules out overlap, so the compiler vectorizes the loop.
template <bool HasPrevious>
inline void LstmCellRow(const float* __restrict z, const float* __restrict previous, int64_t units,
                        float* __restrict c) {
  for (int64_t j = 0; j < units; ++j) {
    const float kept = z[units + j] * (HasPrevious ? previous[j] : 0.0f);
    c[j] = kept + z[j] * z[2 * units + j];
  }
}

inline void LstmForward(const float* inputs, const Weights& w, const Dims& d, float* states, float* cells,
                        float* cell_tanh, float* gates) {
  const int64_t units = d.units, width = d.gates();
  const int64_t step = d.batch * units, gate_step = d.batch * width;
  Eigen::ArrayXf scale = Eigen::ArrayXf::Constant(width, 0.5f), offset = scale;
  scale.segment(2 * units, units).setConstant(1.0f);  // the cell candidate takes tanh
  offset.segment(2 * units, units).setConstant(0.0f);

  const int64_t chunk = CachedSteps(d);
  const StepProduct through_kernel(w.kernel, d.features, width, Chunks(d.time, chunk));
  const StepProduct through_recurrent(w.recurrent, units, width, d.time - 1);
  for (int64_t t = 0; t < d.time; ++t) {
    if (t % chunk == 0) ProjectInputs(inputs, through_kernel, w.bias, d, t, std::min(chunk, d.time - t), gates);
    float* z = gates + t * gate_step;
    float* c = cells + t * step;
    if (t > 0) through_recurrent(states + (t - 1) * step, d.batch, z, true);
    for (int64_t b = 0; b < d.batch; ++b) {
      float* zb = z + b * width;
      Activate(zb, width, scale, offset);
      float* cb = c + b * units;
      if (t > 0) {
        LstmCellRow<true>(zb, cb - step, units, cb);
      } else {
        LstmCellRow<false>(zb, nullptr, units, cb);
      }
    }
    Array tanh_c(cell_tanh + t * step, d.batch, units);
    tanh_c = Array(c, d.batch, units).tanh();
    float* h = states + t * step;
    for (int64_t b = 0; b < d.batch; ++b) {
      const float* o = z + b * width + 3 * units;
      for (int64_t j = 0; j < units; ++j) h[b * units + j] = o[j] * tanh_c.data()[b * units + j];
    }
  }
}

// Columns j.. of one row of one backward step (one float, or one vector of them): the
// pre-activation gradients `dz` (4u) from the activated gates `z` (4u), tanh(c) and the previous
// cell state (none at the first step: zero, and f * 0 as forward), the state gradient from
// above and the carries `dh`, `dc` from step t + 1; `dc` is updated in place and `dz` added to
// the bias gradient `bias_grad` (4u) while it is in registers.
template <bool HasPrevious, typename Lanes>
inline void LstmBackwardLanes(const float* z, const float* tanh_c, const float* previous, const float* from_above,
                              int64_t units, int64_t j, const float* dh, float* dc, float* dz, float* bias_grad) {
  using products::LoadLanes;
  using products::StoreLanes;
  const Lanes i = LoadLanes<Lanes>(z + j), f = LoadLanes<Lanes>(z + units + j);
  const Lanes g = LoadLanes<Lanes>(z + 2 * units + j), o = LoadLanes<Lanes>(z + 3 * units + j);
  const Lanes tc = LoadLanes<Lanes>(tanh_c + j);
  const Lanes dh_j = LoadLanes<Lanes>(dh + j) + LoadLanes<Lanes>(from_above + j);
  const Lanes dc_j = LoadLanes<Lanes>(dc + j) + dh_j * o * (1.0f - tc * tc);
  const Lanes kept = HasPrevious ? LoadLanes<Lanes>(previous + j) : Lanes{};
  const Lanes gradients[4] = {dc_j * g * i * (1.0f - i), dc_j * kept * f * (1.0f - f), dc_j * i * (1.0f - g * g),
                              dh_j * tc * o * (1.0f - o)};
  for (int gate = 0; gate < 4; ++gate) {
    StoreLanes(dz + gate * units + j, gradients[gate]);
    StoreLanes(bias_grad + gate * units + j, LoadLanes<Lanes>(bias_grad + gate * units + j) + gradients[gate]);
  }
  StoreLanes(dc + j, dc_j * f);
}

// One row of one backward step, LstmBackwardLanes over its columns: vector registers written
// out, as the compiler does not vectorize the bias's read-modify-write beside the gates' reads.
template <bool HasPrevious>
inline void LstmBackwardRow(const float* z, const float* tanh_c, const float* previous, const float* from_above,
                            int64_t units, const float* dh, float* dc, float* dz, float* bias_grad) {
  int64_t j = 0;
  for (; j + products::kLanes <= units; j += products::kLanes) {
    LstmBackwardLanes<HasPrevious, products::Vector>(z, tanh_c, previous, from_above, units, j, dh, dc, dz, bias_grad);
  }
  for (; j < units; ++j) {
    LstmBackwardLanes<HasPrevious, float>(z, tanh_c, previous, from_above, units, j, dh, dc, dz, bias_grad);
  }
}

inline void LstmBackward(const float* inputs, const Weights& w, const Dims& d, const float* states,
                         const float* cells, const float* cell_tanh, const float* gates, const float* states_grad,
                         float* scratch, const Gradients& grads) {
  const int64_t units = d.units, width = d.gates();
  const int64_t step = d.batch * units, gate_step = d.batch * width;
  // The pre-activation gradients of the steps not yet in the weight gradients (`chunk` steps
  // at most, step t in row block t % chunk), and the gradients that step t + 1 sends back into
  // step t: hidden state (h_carry) and cell state (c_carry).
  const int64_t chunk = std::min(CachedSteps(d), d.time);
  float* dz_chunk = scratch;
  float* h_carry = dz_chunk + chunk * gate_step;
  float* c_carry = h_carry + step;
  std::fill(h_carry, h_carry + 2 * step, 0.0f);
  std::fill(grads.bias, grads.bias + width, 0.0f);
  const StepProduct through_kernel_t = InputGradientProduct(w, d, Chunks(d.time, chunk), grads);
  const StepProduct through_recurrent(w.recurrent, width, units, d.time - 1, true);  // dz R^T
  int64_t end = d.time;  // the steps [t, end) whose weight gradients are not yet added
  for (int64_t t = d.time - 1; t >= 0; --t) {
    float* dz_step = dz_chunk + (t % chunk) * gate_step;
    for (int64_t b = 0; b < d.batch; ++b) {
      const int64_t at = t * step + b * units;  // this row's states in (T, B, u) arrays
      const float* z = gates + t * gate_step + b * width;
      float* dz = dz_step + b * width;
      float* dh = h_carry + b * units;
      float* dc = c_carry + b * units;
      if (t > 0) {
        LstmBackwardRow<true>(z, cell_tanh + at, cells + at - step, states_grad + at, units, dh, dc, dz, grads.bias);
      } else {
        LstmBackwardRow<false>(z, cell_tanh + at, nullptr, states_grad + at, units, dh, dc, dz, grads.bias);
      }
    }
    if (t > 0) {
      through_recurrent(dz_step, d.batch, h_carry, false);
    }
    if (t % chunk == 0) {  // the steps [t, end) are done: their weight gradients while cached
      InputAndKernelGradients(inputs, through_kernel_t, states, dz_chunk, dz_chunk, d, t, end - t, end < d.time,
                              grads);
      end = t;
    }
  }
}

// --- GRU (reset_after=True, Keras's default) ---------------------------------------------------
// Forward: states (T, B, u), the activated gates (z, r, candidate) (T, B, 3u) and
// h R_h + b_rec_h (T, B, u); scratch (B, 3u). Backward scratch: 2 (T, B, 3u) + (B, u) floats.

inline int64_t GruForwardScratch(const Dims& d) { return d.batch * d.gates(); }
inline int64_t GruScratch(const Dims& d) { return 2 * d.rows() * d.gates() + d.batch * d.units; }

inline void GruForward(const float* inputs, const Weights& w, const Dims& d, float* states, float* gates,
                       float* candidate, float* projected) {
  const int64_t units = d.units, width = d.gates();
  const int64_t step = d.batch * units, gate_step = d.batch * width;
  const Eigen::Map<const Eigen::RowVectorXf> recurrent_bias(w.bias + width, width);
  // with the input bias, the first row of (2, width)
  ProjectInputs(inputs, StepProduct(w.kernel, d.features, width, 1), w.bias, d, 0, d.time, gates);
  const StepProduct through_recurrent(w.recurrent, units, width, d.time - 1);
  for (int64_t t = 0; t < d.time; ++t) {
    MatrixMap recurrent_part(projected, d.batch, width);  // h R + b_rec of this step
    recurrent_part.rowwise() = recurrent_bias;
    if (t > 0) through_recurrent(states + (t - 1) * step, d.batch, projected, true);
    for (int64_t b = 0; b < d.batch; ++b) {
      float* g = gates + t * gate_step + b * width;  // x K + b_in, becomes (z, r, hh)
      const float* p = projected + b * width;
      float* h = states + t * step + b * units;
      const float* previous = t > 0 ? h - step : nullptr;  // zero initial state
      for (int64_t j = 0; j < 2 * units; ++j) g[j] += p[j];
      Sigmoid(g, 2 * units);
      for (int64_t j = 0; j < units; ++j) {
        candidate[t * step + b * units + j] = p[2 * units + j];
        g[2 * units + j] += g[units + j] * p[2 * units + j];
      }
      Eigen::Map<Eigen::ArrayXf> hh(g + 2 * units, units);
      hh = hh.tanh();
      for (int64_t j = 0; j < units; ++j) {
        const float z = g[j];
        h[j] = z * (previous ? previous[j] : 0.0f) + (1.0f - z) * hh[j];
      }
    }
  }
}

// One row of one GRU backward step: the gradients `dx` of x K + b_in and `dr` of h R + b_rec
// (3u each) from the activated gates `g` (z, r, candidate), h R_h + b_rec_h (`candidate`), the
// previous state (none at the first step: zero) and the state gradients; `dh` carries the
// gradient through h' = z h + ... back a step (the product through R is added by the caller).
template <bool HasPrevious>
inline void GruBackwardRow(const float* __restrict g, const float* __restrict candidate,
                           const float* __restrict previous, const float* __restrict from_above, int64_t units,
                           float* __restrict dh, float* __restrict dx, float* __restrict dr) {
  for (int64_t j = 0; j < units; ++j) {
    const float z = g[j], r = g[units + j], hh = g[2 * units + j];
    const float h = HasPrevious ? previous[j] : 0.0f;
    const float dh_j = dh[j] + from_above[j];
    const float d_candidate = dh_j * (1.0f - z) * (1.0f - hh * hh);
    dx[j] = dr[j] = dh_j * (h - hh) * z * (1.0f - z);
    dx[units + j] = dr[units + j] = d_candidate * candidate[j] * r * (1.0f - r);
    dx[2 * units + j] = d_candidate;
    dr[2 * units + j] = d_candidate * r;
    dh[j] = dh_j * z;
  }
}

inline void GruBackward(const float* inputs, const Weights& w, const Dims& d, const float* states,
                        const float* gates, const float* candidate, const float* states_grad, float* scratch,
                        const Gradients& grads) {
  const int64_t units = d.units, width = d.gates();
  const int64_t step = d.batch * units, gate_step = d.batch * width;
  // Gradients of x K + b_in and of h R + b_rec for every step (they differ in the candidate's
  // columns, which the reset gate scales), and the hidden-state gradient sent back a step.
  float* input_side = scratch;
  float* recurrent_side = input_side + d.rows() * width;
  float* h_carry = recurrent_side + d.rows() * width;
  std::fill(h_carry, h_carry + step, 0.0f);
  const StepProduct through_recurrent(w.recurrent, width, units, d.time - 1, true);  // dr R^T
  for (int64_t t = d.time - 1; t >= 0; --t) {
    for (int64_t b = 0; b < d.batch; ++b) {
      const int64_t at = t * step + b * units;
      const float* g = gates + t * gate_step + b * width;
      float* dx = input_side + t * gate_step + b * width;
      float* dr = recurrent_side + t * gate_step + b * width;
      if (t > 0) {
        GruBackwardRow<true>(g, candidate + at, states + at - step, states_grad + at, units, h_carry + b * units, dx,
                             dr);
      } else {
        GruBackwardRow<false>(g, candidate + at, nullptr, states_grad + at, units, h_carry + b * units, dx, dr);
      }
    }
    if (t > 0) {
      through_recurrent(recurrent_side + t * gate_step, d.batch, h_carry, true);
    }
  }
  InputAndKernelGradients(inputs, InputGradientProduct(w, d, 1, grads), states, input_side, recurrent_side, d, 0,
                          d.time, false, grads);
  SumRows(input_side, d.rows(), width, grads.bias);
  SumRows(recurrent_side, d.rows(), width, grads.bias + width);
}

// --- SimpleRNN (tanh) --------------------------------------------------------------------------
// Forward: states (T, B, u). Backward scratch: (T, B, u) + (B, u) floats.

inline int64_t SimpleRnnScratch(const Dims& d) { return d.rows() * d.units + d.batch * d.units; }

inline void SimpleRnnForward(const float* inputs, const Weights& w, const Dims& d, float* states) {
  const int64_t step = d.batch * d.units;
  ProjectInputs(inputs, StepProduct(w.kernel, d.features, d.units, 1), w.bias, d, 0, d.time, states);
  const StepProduct through_recurrent(w.recurrent, d.units, d.units, d.time - 1);
  for (int64_t t = 0; t < d.time; ++t) {
    if (t > 0) through_recurrent(states + (t - 1) * step, d.batch, states + t * step, true);
    Eigen::Map<Eigen::ArrayXf> h(states + t * step, step);
    h = h.tanh();
  }
}

inline void SimpleRnnBackward(const float* inputs, const Weights& w, const Dims& d, const float* states,
                              const float* states_grad, float* scratch, const Gradients& grads) {
  const int64_t units = d.units, step = d.batch * units;
  float* pre = scratch;  // gradients of x K + h R + b per step
  float* h_carry = pre + d.rows() * units;
  std::fill(h_carry, h_carry + step, 0.0f);
  const StepProduct through_recurrent(w.recurrent, units, units, d.time - 1, true);  // pre R^T
  for (int64_t t = d.time - 1; t >= 0; --t) {
    for (int64_t k = 0; k < step; ++k) {
      const float h = states[t * step + k];
      pre[t * step + k] = (h_carry[k] + states_grad[t * step + k]) * (1.0f - h * h);
    }
    if (t > 0) through_recurrent(pre + t * step, d.batch, h_carry, false);
  }
  InputAndKernelGradients(inputs, InputGradientProduct(w, d, 1, grads), states, pre, pre, d, 0, d.time, false, grads);
  SumRows(pre, d.rows(), units, grads.bias);
}

}  // namespace tf_sine

#endif  // TF_SINE_NATIVE_CELLS_H_
