// The recurrent layers' math on plain arrays, shared by the per-layer ops and the training op
// (rnn_ops.cc): a Keras LSTM, GRU or SimpleRNN layer forward over a whole time-major sequence,
// and its gradient. No TensorFlow here: callers own every buffer.
//
// The functions are the Keras layers with their defaults, zero initial state:
//   LSTM:      z = x K + h R + b split (i, f, c, o); c' = f c + i tanh(c~); h' = o tanh(c').
//   GRU:       (reset_after) x K + b_in and h R + b_rec split (z, r, h);
//              h' = z h + (1 - z) tanh(x_h + r (h R_h + b_rec_h)).
//   SimpleRNN: h' = tanh(x K + h R + b).
// The input projection x K of all time steps is one matrix product before the recurrence, and
// the weight gradients are one product each after it, so the sequential part is one small
// product per step (products.h) and one pass of vectorized elementwise math.

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

// The input projection of every time step at once: (T * B, width) = inputs K + bias.
inline void ProjectInputs(const float* inputs, const Weights& w, const Dims& d, float* out) {
  // The bias first and the product added to it: Eigen's `=` would zero the array first, and
  // the bias then take another pass over it.
  MatrixMap projected(out, d.rows(), d.gates());
  projected.rowwise() = Eigen::Map<const Eigen::RowVectorXf>(w.bias, d.gates());
  projected.noalias() += ConstMatrixMap(inputs, d.rows(), d.features) * ConstMatrixMap(w.kernel, d.features, d.gates());
}

// After the backward recurrence: the gradients of the inputs and of both kernels, one product
// each over all steps. `input_side` (T * B, width) is the gradient of x K + b_in, and
// `recurrent_side` that of h R (the same array except in the GRU, whose reset gate sits
// between h R_h and the candidate); the initial state is zero, so step 0 adds nothing to R's.
inline void InputAndKernelGradients(const float* inputs, const Weights& w, const float* states,
                                    const float* input_side, const float* recurrent_side, const Dims& d,
                                    const Gradients& grads) {
  const int64_t rows = d.rows(), later = rows - d.batch, width = d.gates();
  ConstMatrixMap input_grads(input_side, rows, width);
  MatrixMap(grads.kernel, d.features, width).noalias() =
      ConstMatrixMap(inputs, rows, d.features).transpose() * input_grads;
  MatrixMap(grads.recurrent, d.units, width).noalias() =
      ConstMatrixMap(states, later, d.units).transpose() *
      ConstMatrixMap(recurrent_side + d.batch * width, later, width);
  if (grads.inputs != nullptr) {
    MatrixMap(grads.inputs, rows, d.features).noalias() =
        input_grads * ConstMatrixMap(w.kernel, d.features, width).transpose();
  }
}

// The backward step's product through the recurrent kernel R (units, width): out (rows, units)
// = dz (rows, width) R^T, or += when `accumulate`. products.h reads R^T, made once a backward
// pass, where `units` makes whole tiles; elsewhere Eigen multiplies by R's transposed view.
class BackwardStepProduct {
 public:
  BackwardStepProduct(const float* recurrent, int64_t units, int64_t width)
      : recurrent_(recurrent), units_(units), width_(width) {
    if (Tiled(units)) transposed_ = ConstMatrixMap(recurrent, units, width).transpose();
  }
  void operator()(const float* dz, int64_t rows, float* out, bool accumulate) const {
    if (transposed_.size() > 0) return StepProduct(dz, rows, width_, transposed_.data(), units_, out, accumulate);
    MatrixMap result(out, rows, units_);
    const auto product = ConstMatrixMap(dz, rows, width_) * ConstMatrixMap(recurrent_, units_, width_).transpose();
    if (accumulate) {
      result.noalias() += product;
    } else {
      result.noalias() = product;
    }
  }

 private:
  const float* recurrent_;
  int64_t units_, width_;
  Matrix transposed_;
};

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
// Backward scratch: (T, B, 4u) + 2 (B, u) floats.

inline int64_t LstmScratch(const Dims& d) { return d.rows() * d.gates() + 2 * d.batch * d.units; }

inline void LstmForward(const float* inputs, const Weights& w, const Dims& d, float* states, float* cells,
                        float* cell_tanh, float* gates) {
  const int64_t units = d.units, width = d.gates();
  const int64_t step = d.batch * units, gate_step = d.batch * width;
  Eigen::ArrayXf scale = Eigen::ArrayXf::Constant(width, 0.5f), offset = scale;
  scale.segment(2 * units, units).setConstant(1.0f);  // the cell candidate takes tanh
  offset.segment(2 * units, units).setConstant(0.0f);

  ProjectInputs(inputs, w, d, gates);
  for (int64_t t = 0; t < d.time; ++t) {
    float* z = gates + t * gate_step;
    float* c = cells + t * step;
    if (t > 0) StepProduct(states + (t - 1) * step, d.batch, units, w.recurrent, width, z, true);
    for (int64_t b = 0; b < d.batch; ++b) {
      float* zb = z + b * width;
      Activate(zb, width, scale, offset);
      float* cb = c + b * units;
      const float* previous = t > 0 ? cb - step : nullptr;  // zero initial state
      for (int64_t j = 0; j < units; ++j) {
        // f * 0 rather than 0 at the first step: a NaN gate spreads as it does in Keras.
        const float kept = zb[units + j] * (previous ? previous[j] : 0.0f);
        cb[j] = kept + zb[j] * zb[2 * units + j];
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

inline void LstmBackward(const float* inputs, const Weights& w, const Dims& d, const float* states,
                         const float* cells, const float* cell_tanh, const float* gates, const float* states_grad,
                         float* scratch, const Gradients& grads) {
  const int64_t units = d.units, width = d.gates();
  const int64_t step = d.batch * units, gate_step = d.batch * width;
  // The pre-activation gradients of every step, and the gradients that step t + 1 sends back
  // into step t: hidden state (h_carry) and cell state (c_carry).
  float* dz_all = scratch;
  float* h_carry = dz_all + d.rows() * width;
  float* c_carry = h_carry + step;
  std::fill(h_carry, h_carry + 2 * step, 0.0f);
  const BackwardStepProduct through_recurrent(w.recurrent, units, width);
  for (int64_t t = d.time - 1; t >= 0; --t) {
    for (int64_t b = 0; b < d.batch; ++b) {
      const int64_t at = t * step + b * units;  // this row's states in (T, B, u) arrays
      const float* z = gates + t * gate_step + b * width;
      float* dz = dz_all + t * gate_step + b * width;
      float* dh = h_carry + b * units;
      float* dc = c_carry + b * units;
      for (int64_t j = 0; j < units; ++j) {
        const float i = z[j], f = z[units + j], g = z[2 * units + j], o = z[3 * units + j];
        const float tc = cell_tanh[at + j];
        const float dh_j = dh[j] + states_grad[at + j];
        const float dc_j = dc[j] + dh_j * o * (1.0f - tc * tc);
        const float previous = t > 0 ? cells[at - step + j] : 0.0f;  // zero initial state
        dz[j] = dc_j * g * i * (1.0f - i);
        dz[units + j] = dc_j * previous * f * (1.0f - f);
        dz[2 * units + j] = dc_j * i * (1.0f - g * g);
        dz[3 * units + j] = dh_j * tc * o * (1.0f - o);
        dc[j] = dc_j * f;
      }
    }
    if (t > 0) {
      through_recurrent(dz_all + t * gate_step, d.batch, h_carry, false);
    }
  }
  InputAndKernelGradients(inputs, w, states, dz_all, dz_all, d, grads);
  SumRows(dz_all, d.rows(), width, grads.bias);
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
  ProjectInputs(inputs, w, d, gates);  // with the input bias, the first row of (2, width)
  for (int64_t t = 0; t < d.time; ++t) {
    MatrixMap recurrent_part(projected, d.batch, width);  // h R + b_rec of this step
    recurrent_part.rowwise() = recurrent_bias;
    if (t > 0) StepProduct(states + (t - 1) * step, d.batch, units, w.recurrent, width, projected, true);
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
  const BackwardStepProduct through_recurrent(w.recurrent, units, width);
  for (int64_t t = d.time - 1; t >= 0; --t) {
    for (int64_t b = 0; b < d.batch; ++b) {
      const int64_t at = t * step + b * units;
      const float* g = gates + t * gate_step + b * width;
      float* dx = input_side + t * gate_step + b * width;
      float* dr = recurrent_side + t * gate_step + b * width;
      float* dh = h_carry + b * units;
      for (int64_t j = 0; j < units; ++j) {
        const float z = g[j], r = g[units + j], hh = g[2 * units + j];
        const float previous = t > 0 ? states[at - step + j] : 0.0f;  // zero initial state
        const float dh_j = dh[j] + states_grad[at + j];
        const float d_candidate = dh_j * (1.0f - z) * (1.0f - hh * hh);
        dx[j] = dr[j] = dh_j * (previous - hh) * z * (1.0f - z);
        dx[units + j] = dr[units + j] = d_candidate * candidate[at + j] * r * (1.0f - r);
        dx[2 * units + j] = d_candidate;
        dr[2 * units + j] = d_candidate * r;
        dh[j] = dh_j * z;  // through h' = z h + ...; the product through R is added below
      }
    }
    if (t > 0) {
      through_recurrent(recurrent_side + t * gate_step, d.batch, h_carry, true);
    }
  }
  InputAndKernelGradients(inputs, w, states, input_side, recurrent_side, d, grads);
  SumRows(input_side, d.rows(), width, grads.bias);
  SumRows(recurrent_side, d.rows(), width, grads.bias + width);
}

// --- SimpleRNN (tanh) --------------------------------------------------------------------------
// Forward: states (T, B, u). Backward scratch: (T, B, u) + (B, u) floats.

inline int64_t SimpleRnnScratch(const Dims& d) { return d.rows() * d.units + d.batch * d.units; }

inline void SimpleRnnForward(const float* inputs, const Weights& w, const Dims& d, float* states) {
  const int64_t step = d.batch * d.units;
  ProjectInputs(inputs, w, d, states);
  for (int64_t t = 0; t < d.time; ++t) {
    if (t > 0) StepProduct(states + (t - 1) * step, d.batch, d.units, w.recurrent, d.units, states + t * step, true);
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
  const BackwardStepProduct through_recurrent(w.recurrent, units, units);
  for (int64_t t = d.time - 1; t >= 0; --t) {
    for (int64_t k = 0; k < step; ++k) {
      const float h = states[t * step + k];
      pre[t * step + k] = (h_carry[k] + states_grad[t * step + k]) * (1.0f - h * h);
    }
    if (t > 0) through_recurrent(pre + t * step, d.batch, h_carry, false);
  }
  InputAndKernelGradients(inputs, w, states, pre, pre, d, grads);
  SumRows(pre, d.rows(), units, grads.bias);
}

}  // namespace tf_sine

#endif  // TF_SINE_NATIVE_CELLS_H_
