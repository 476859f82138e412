// tf_sine's recurrent training kernels: a Keras LSTM, GRU or SimpleRNN layer run forward over a
// whole sequence, and its gradient, each as one TensorFlow op.
//
// The functions are the Keras layers with their defaults, zero initial state:
//   LSTM:      z = x K + h R + b split (i, f, c, o); c' = f c + i tanh(c~); h' = o tanh(c').
//   GRU:       (reset_after) x K + b_in and h R + b_rec split (z, r, h);
//              h' = z h + (1 - z) tanh(x_h + r (h R_h + b_rec_h)).
//   SimpleRNN: h' = tanh(x K + h R + b).
// The input projection x K of all time steps is one matrix product before the recurrence, and
// the weight gradients are one product each after it, so the sequential part is one small
// product per step (Eigen) and one pass of vectorized elementwise math. Each op runs on the
// calling thread: the training engine runs batch shards side by side instead.

#include <algorithm>
#include <string>
#include <vector>

#include "Eigen/Core"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tf_sine {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;
using Array = Eigen::Map<Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// Shapes of one call, checked against each other. `gate_count` blocks of `units` columns make
// the kernels' width: 4 for LSTM, 3 for GRU, 1 for SimpleRNN.
struct Dims {
  int64_t time, batch, features, units, gate_count;
  int64_t gates() const { return gate_count * units; }
  int64_t rows() const { return time * batch; }
};

// The kernels' width in words, for error messages: "units" or "4 * units".
std::string WidthName(int64_t gate_count) {
  return gate_count == 1 ? "units" : std::to_string(gate_count) + " * units";
}

absl::Status CheckDims(const Tensor& inputs, const Tensor& kernel, const Tensor& recurrent,
                       int64_t gate_count, Dims* dims) {
  const std::string width = WidthName(gate_count);
  if (inputs.dims() != 3) {
    return absl::InvalidArgumentError("inputs must be (time, batch, features), got rank " +
                                      std::to_string(inputs.dims()));
  }
  dims->time = inputs.dim_size(0);
  dims->batch = inputs.dim_size(1);
  dims->features = inputs.dim_size(2);
  dims->gate_count = gate_count;
  if (recurrent.dims() != 2 || recurrent.dim_size(1) != gate_count * recurrent.dim_size(0)) {
    return absl::InvalidArgumentError("recurrent_kernel must be (units, " + width + "), got " +
                                      recurrent.shape().DebugString());
  }
  dims->units = recurrent.dim_size(0);
  if (kernel.dims() != 2 || kernel.dim_size(0) != dims->features ||
      kernel.dim_size(1) != dims->gates()) {
    return absl::InvalidArgumentError("kernel must be (features, " + width + "), got " +
                                      kernel.shape().DebugString());
  }
  return absl::OkStatus();
}

// (T, B, u) for the states, or (T, B, width) where `wide`.
TensorShape SequenceShape(const Dims& d, bool wide) {
  return TensorShape({d.time, d.batch, wide ? d.gates() : d.units});
}

// The bias: `bias_rows` rows of the width (GRU's input and recurrent biases), or a vector.
TensorShape BiasShape(const Dims& d, int64_t bias_rows) {
  return bias_rows ? TensorShape({bias_rows, d.gates()}) : TensorShape({d.gates()});
}

bool Contains(std::initializer_list<int> positions, int position) {
  return std::find(positions.begin(), positions.end(), position) != positions.end();
}

// The start of every forward op: checks inputs, kernel, recurrent_kernel and bias (inputs 0-3)
// and allocates `outputs` outputs, (T, B, width) at the positions in `wide`, else (T, B, u).
// Returns false when the op is done: an error was set, or there is nothing to compute.
bool StartForward(OpKernelContext* context, int64_t gate_count, int64_t bias_rows, int outputs,
                  std::initializer_list<int> wide, Dims* d, std::vector<float*>* out) {
  absl::Status status = CheckDims(context->input(0), context->input(1), context->input(2), gate_count, d);
  const TensorShape bias_shape = BiasShape(*d, bias_rows);
  if (status.ok() && context->input(3).shape() != bias_shape) {
    const std::string width = WidthName(gate_count);
    const std::string expected = bias_rows ? "(" + std::to_string(bias_rows) + ", " + width + ")" : "(" + width + ",)";
    status = absl::InvalidArgumentError("bias must be " + expected + ", got " +
                                        context->input(3).shape().DebugString());
  }
  for (int output = 0; status.ok() && output < outputs; ++output) {
    Tensor* tensor;
    status = context->allocate_output(output, SequenceShape(*d, Contains(wide, output)), &tensor);
    if (status.ok()) out->push_back(tensor->flat<float>().data());
  }
  if (!status.ok()) context->SetStatus(status);
  return status.ok() && d->rows() > 0;
}

// The gradients of one layer's op, its outputs 0-3.
struct Gradients {
  float *inputs, *kernel, *recurrent, *bias;
};

// The start of every gradient op: checks inputs, kernel and recurrent_kernel (inputs 0-2) and
// what the op takes back from the forward op, inputs 3 to 3 + saved - 1 (the states, the
// forward op's other outputs and last the states' gradient; (T, B, width) at the positions in
// `wide`, counted from 3, else (T, B, u)), and allocates the gradients. Returns false when the
// op is done: an error was set, or there are no rows (the weight gradients are then zero).
bool StartGradient(OpKernelContext* context, int64_t gate_count, int64_t bias_rows, int saved,
                   std::initializer_list<int> wide, Dims* d, Gradients* grads) {
  absl::Status status = CheckDims(context->input(0), context->input(1), context->input(2), gate_count, d);
  for (int input = 3; status.ok() && input < 3 + saved; ++input) {
    if (context->input(input).shape() != SequenceShape(*d, Contains(wide, input - 3))) {
      status = absl::InvalidArgumentError("input " + std::to_string(input) +
                                          " must have the forward op's shape, got " +
                                          context->input(input).shape().DebugString());
    }
  }
  Tensor* tensors[4];
  const TensorShape shapes[4] = {context->input(0).shape(), context->input(1).shape(),
                                 context->input(2).shape(), BiasShape(*d, bias_rows)};
  for (int i = 0; status.ok() && i < 4; ++i) status = context->allocate_output(i, shapes[i], &tensors[i]);
  if (!status.ok()) {
    context->SetStatus(status);
    return false;
  }
  *grads = {tensors[0]->flat<float>().data(), tensors[1]->flat<float>().data(),
            tensors[2]->flat<float>().data(), tensors[3]->flat<float>().data()};
  if (d->rows() > 0) return true;
  for (int i = 1; i < 4; ++i) tensors[i]->flat<float>().setZero();
  return false;
}

// The input projection of every time step at once: (T * B, width) = inputs K + bias.
void ProjectInputs(const Tensor& inputs, const Tensor& kernel, const float* bias, const Dims& d,
                   float* out) {
  MatrixMap projected(out, d.rows(), d.gates());
  projected.noalias() = ConstMatrixMap(inputs.flat<float>().data(), d.rows(), d.features) *
                        ConstMatrixMap(kernel.flat<float>().data(), d.features, d.gates());
  projected.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias, d.gates());
}

// After the backward recurrence: the gradients of the inputs and of both kernels, one product
// each over all steps. `input_side` (T * B, width) is the gradient of x K + b_in, and
// `recurrent_side` that of h R (the same array except in the GRU, whose reset gate sits
// between h R_h and the candidate); the initial state is zero, so step 0 adds nothing to R's.
void InputAndKernelGradients(const Tensor& inputs, const Tensor& kernel, const float* states,
                             const float* input_side, const float* recurrent_side, const Dims& d,
                             const Gradients& grads) {
  const int64_t rows = d.rows(), later = rows - d.batch, width = d.gates();
  ConstMatrixMap input_grads(input_side, rows, width);
  MatrixMap(grads.kernel, d.features, width).noalias() =
      ConstMatrixMap(inputs.flat<float>().data(), rows, d.features).transpose() * input_grads;
  MatrixMap(grads.recurrent, d.units, width).noalias() =
      ConstMatrixMap(states, later, d.units).transpose() *
      ConstMatrixMap(recurrent_side + d.batch * width, later, width);
  MatrixMap(grads.inputs, rows, d.features).noalias() =
      input_grads * ConstMatrixMap(kernel.flat<float>().data(), d.features, width).transpose();
}

// Sums the rows of a (rows, width) array into `out` (a bias gradient).
void SumRows(const float* values, int64_t rows, int64_t width, float* out) {
  Eigen::Map<Eigen::RowVectorXf>(out, width).noalias() = ConstMatrixMap(values, rows, width).colwise().sum();
}

// sigmoid(z) = 0.5 + 0.5 tanh(z / 2): one vectorized tanh pass can then activate whole
// contiguous rows of mixed sigmoid and tanh columns, instead of column blocks with ragged ends.
// `scale` and `offset` (per column) are 0.5 for a sigmoid column, 1 and 0 for a tanh column.
void Activate(float* values, int64_t width, const Eigen::ArrayXf& scale, const Eigen::ArrayXf& offset) {
  Eigen::Map<Eigen::ArrayXf> z(values, width);
  z = offset + scale * (scale * z).tanh();
}

void Sigmoid(float* values, int64_t width) {
  Eigen::Map<Eigen::ArrayXf> z(values, width);
  z = 0.5f + 0.5f * (0.5f * z).tanh();
}

// ---------------------------------------------------------------------------------------------
// LSTM

class LstmOp : public OpKernel {
 public:
  explicit LstmOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    Dims d;
    std::vector<float*> out;
    if (!StartForward(context, 4, 0, 4, {3}, &d, &out)) return;
    float *states = out[0], *cells = out[1], *cell_tanh = out[2], *gates = out[3];
    const Tensor &inputs = context->input(0), &kernel = context->input(1), &recurrent = context->input(2);
    const int64_t units = d.units, width = d.gates();
    const int64_t step = d.batch * units, gate_step = d.batch * width;
    Eigen::ArrayXf scale = Eigen::ArrayXf::Constant(width, 0.5f), offset = scale;
    scale.segment(2 * units, units).setConstant(1.0f);  // the cell candidate takes tanh
    offset.segment(2 * units, units).setConstant(0.0f);

    ProjectInputs(inputs, kernel, context->input(3).flat<float>().data(), d, gates);
    ConstMatrixMap recurrent_kernel(recurrent.flat<float>().data(), units, width);
    for (int64_t t = 0; t < d.time; ++t) {
      float* z = gates + t * gate_step;
      float* c = cells + t * step;
      if (t > 0) {
        MatrixMap(z, d.batch, width).noalias() +=
            ConstMatrixMap(states + (t - 1) * step, d.batch, units) * recurrent_kernel;
      }
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
};

class LstmGradOp : public OpKernel {
 public:
  explicit LstmGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    Dims d;
    Gradients grads;  // takes back states, cells, cell_tanh, gates (wide) and states_grad
    if (!StartGradient(context, 4, 0, 5, {3}, &d, &grads)) return;
    const Tensor &inputs = context->input(0), &kernel = context->input(1), &recurrent = context->input(2);
    const TensorShape gate_shape = SequenceShape(d, true);
    const int64_t units = d.units, width = d.gates();
    const int64_t step = d.batch * units, gate_step = d.batch * width;
    // The pre-activation gradients of every step, and the gradients that step t + 1 sends
    // back into step t: hidden state (h_carry) and cell state (c_carry).
    Tensor dz_tensor, carry_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT, gate_shape, &dz_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT,
                                                   TensorShape({2, d.batch, units}), &carry_tensor));
    const float* states = context->input(3).flat<float>().data();
    const float* cells = context->input(4).flat<float>().data();
    const float* cell_tanh = context->input(5).flat<float>().data();
    const float* gates = context->input(6).flat<float>().data();
    const float* states_grad = context->input(7).flat<float>().data();
    float* dz_all = dz_tensor.flat<float>().data();
    float* h_carry = carry_tensor.flat<float>().data();
    float* c_carry = h_carry + step;
    std::fill(h_carry, h_carry + 2 * step, 0.0f);
    ConstMatrixMap recurrent_kernel(recurrent.flat<float>().data(), units, width);
    for (int64_t t = d.time - 1; t >= 0; --t) {
      for (int64_t b = 0; b < d.batch; ++b) {
        const int64_t at = t * step + b * units;  // this row's states in (T, B, u) tensors
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
        MatrixMap(h_carry, d.batch, units).noalias() =
            ConstMatrixMap(dz_all + t * gate_step, d.batch, width) * recurrent_kernel.transpose();
      }
    }
    InputAndKernelGradients(inputs, kernel, states, dz_all, dz_all, d, grads);
    SumRows(dz_all, d.rows(), width, grads.bias);
  }
};

// ---------------------------------------------------------------------------------------------
// GRU (reset_after=True, Keras's default)

class GruOp : public OpKernel {
 public:
  explicit GruOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    Dims d;
    std::vector<float*> out;
    if (!StartForward(context, 3, 2, 3, {1}, &d, &out)) return;
    float *states = out[0], *gates = out[1], *candidate = out[2];
    const Tensor &inputs = context->input(0), &kernel = context->input(1), &recurrent = context->input(2);
    Tensor projected_tensor;  // h R + b_rec of the current step
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT,
                                                   TensorShape({d.batch, d.gates()}), &projected_tensor));
    float* projected = projected_tensor.flat<float>().data();
    const float* input_bias = context->input(3).flat<float>().data();
    const Eigen::Map<const Eigen::RowVectorXf> recurrent_bias(input_bias + d.gates(), d.gates());
    const int64_t units = d.units, width = d.gates();
    const int64_t step = d.batch * units, gate_step = d.batch * width;

    ProjectInputs(inputs, kernel, input_bias, d, gates);
    ConstMatrixMap recurrent_kernel(recurrent.flat<float>().data(), units, width);
    for (int64_t t = 0; t < d.time; ++t) {
      MatrixMap recurrent_part(projected, d.batch, width);
      recurrent_part.rowwise() = recurrent_bias;
      if (t > 0) {
        recurrent_part.noalias() += ConstMatrixMap(states + (t - 1) * step, d.batch, units) * recurrent_kernel;
      }
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
};

class GruGradOp : public OpKernel {
 public:
  explicit GruGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    Dims d;
    Gradients grads;  // takes back states, gates (wide), recurrent_candidate and states_grad
    if (!StartGradient(context, 3, 2, 4, {1}, &d, &grads)) return;
    const Tensor &inputs = context->input(0), &kernel = context->input(1), &recurrent = context->input(2);
    const TensorShape gate_shape = SequenceShape(d, true);
    const int64_t units = d.units, width = d.gates();
    const int64_t step = d.batch * units, gate_step = d.batch * width;
    // Gradients of x K + b_in and of h R + b_rec for every step (they differ in the candidate's
    // columns, which the reset gate scales), and the hidden-state gradient sent back a step.
    Tensor input_side_tensor, recurrent_side_tensor, carry_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT, gate_shape, &input_side_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT, gate_shape, &recurrent_side_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT,
                                                   TensorShape({d.batch, units}), &carry_tensor));
    const float* states = context->input(3).flat<float>().data();
    const float* gates = context->input(4).flat<float>().data();
    const float* candidate = context->input(5).flat<float>().data();
    const float* states_grad = context->input(6).flat<float>().data();
    float* input_side = input_side_tensor.flat<float>().data();
    float* recurrent_side = recurrent_side_tensor.flat<float>().data();
    float* h_carry = carry_tensor.flat<float>().data();
    std::fill(h_carry, h_carry + step, 0.0f);
    ConstMatrixMap recurrent_kernel(recurrent.flat<float>().data(), units, width);
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
        MatrixMap(h_carry, d.batch, units).noalias() +=
            ConstMatrixMap(recurrent_side + t * gate_step, d.batch, width) * recurrent_kernel.transpose();
      }
    }
    InputAndKernelGradients(inputs, kernel, states, input_side, recurrent_side, d, grads);
    SumRows(input_side, d.rows(), width, grads.bias);
    SumRows(recurrent_side, d.rows(), width, grads.bias + width);
  }
};

// ---------------------------------------------------------------------------------------------
// SimpleRNN (tanh)

class SimpleRnnOp : public OpKernel {
 public:
  explicit SimpleRnnOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    Dims d;
    std::vector<float*> out;
    if (!StartForward(context, 1, 0, 1, {}, &d, &out)) return;
    float* states = out[0];
    const int64_t step = d.batch * d.units;
    ProjectInputs(context->input(0), context->input(1), context->input(3).flat<float>().data(), d, states);
    ConstMatrixMap recurrent_kernel(context->input(2).flat<float>().data(), d.units, d.units);
    for (int64_t t = 0; t < d.time; ++t) {
      if (t > 0) {
        MatrixMap(states + t * step, d.batch, d.units).noalias() +=
            ConstMatrixMap(states + (t - 1) * step, d.batch, d.units) * recurrent_kernel;
      }
      Eigen::Map<Eigen::ArrayXf> h(states + t * step, step);
      h = h.tanh();
    }
  }
};

class SimpleRnnGradOp : public OpKernel {
 public:
  explicit SimpleRnnGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    Dims d;
    Gradients grads;  // takes back states and states_grad
    if (!StartGradient(context, 1, 0, 2, {}, &d, &grads)) return;
    const Tensor &inputs = context->input(0), &kernel = context->input(1), &recurrent = context->input(2);
    const TensorShape state_shape = SequenceShape(d, false);
    const int64_t units = d.units, step = d.batch * units;
    Tensor pre_tensor, carry_tensor;  // gradients of x K + h R + b per step; dh sent back
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT, state_shape, &pre_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT, TensorShape({d.batch, units}),
                                                   &carry_tensor));
    const float* states = context->input(3).flat<float>().data();
    const float* states_grad = context->input(4).flat<float>().data();
    float* pre = pre_tensor.flat<float>().data();
    float* h_carry = carry_tensor.flat<float>().data();
    std::fill(h_carry, h_carry + step, 0.0f);
    ConstMatrixMap recurrent_kernel(recurrent.flat<float>().data(), units, units);
    for (int64_t t = d.time - 1; t >= 0; --t) {
      for (int64_t k = 0; k < step; ++k) {
        const float h = states[t * step + k];
        pre[t * step + k] = (h_carry[k] + states_grad[t * step + k]) * (1.0f - h * h);
      }
      if (t > 0) {
        MatrixMap(h_carry, d.batch, units).noalias() =
            ConstMatrixMap(pre + t * step, d.batch, units) * recurrent_kernel.transpose();
      }
    }
    InputAndKernelGradients(inputs, kernel, states, pre, pre, d, grads);
    SumRows(pre, d.rows(), units, grads.bias);
  }
};

// ---------------------------------------------------------------------------------------------
// Registration

// Forward ops: outputs (T, B, u) states first; `gate_outputs` more outputs, (T, B, u) or, at the
// positions listed in `wide`, (T, B, width).
absl::Status StatesShape(InferenceContext* c, int outputs, std::initializer_list<int> wide) {
  ShapeHandle inputs, recurrent;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &inputs));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &recurrent));
  for (int output = 0; output < outputs; ++output) {
    const bool is_wide = std::find(wide.begin(), wide.end(), output) != wide.end();
    DimensionHandle last = c->Dim(recurrent, is_wide ? 1 : 0);
    c->set_output(output, c->MakeShape({c->Dim(inputs, 0), c->Dim(inputs, 1), last}));
  }
  return absl::OkStatus();
}

// Gradient ops: the inputs' and kernels' shapes, and the bias's (the forward op's input 3,
// which gradient ops do not take, so rebuilt here: `bias_rows` rows of the width, or a vector).
absl::Status GradientShape(InferenceContext* c, int bias_rows) {
  for (int output = 0; output < 3; ++output) c->set_output(output, c->input(output));
  ShapeHandle recurrent;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &recurrent));
  DimensionHandle width = c->Dim(recurrent, 1);
  c->set_output(3, bias_rows ? c->MakeShape({bias_rows, width}) : c->Vector(width));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("TfSineLstm")
    .Input("inputs: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("bias: float")
    .Output("states: float")
    .Output("cells: float")
    .Output("cell_tanh: float")
    .Output("gates: float")
    .SetShapeFn([](InferenceContext* c) { return StatesShape(c, 4, {3}); })
    .Doc("A Keras LSTM layer over time-major inputs (T, B, F), zero initial state. "
         "Returns the hidden states (T, B, u); the cell states, their tanh (T, B, u) and the "
         "activated gates (T, B, 4u) are kept for TfSineLstmGrad.");

REGISTER_OP("TfSineLstmGrad")
    .Input("inputs: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("states: float")
    .Input("cells: float")
    .Input("cell_tanh: float")
    .Input("gates: float")
    .Input("states_grad: float")
    .Output("inputs_grad: float")
    .Output("kernel_grad: float")
    .Output("recurrent_kernel_grad: float")
    .Output("bias_grad: float")
    .SetShapeFn([](InferenceContext* c) { return GradientShape(c, 0); })
    .Doc("The gradient of TfSineLstm's hidden states with respect to its inputs and weights.");

REGISTER_OP("TfSineGru")
    .Input("inputs: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("bias: float")
    .Output("states: float")
    .Output("gates: float")
    .Output("recurrent_candidate: float")
    .SetShapeFn([](InferenceContext* c) { return StatesShape(c, 3, {1}); })
    .Doc("A Keras GRU layer (reset_after) over time-major inputs (T, B, F), zero initial state. "
         "Returns the hidden states (T, B, u); the activated gates (z, r, candidate) (T, B, 3u) "
         "and h R_h + b_rec_h (T, B, u) are kept for TfSineGruGrad.");

REGISTER_OP("TfSineGruGrad")
    .Input("inputs: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("states: float")
    .Input("gates: float")
    .Input("recurrent_candidate: float")
    .Input("states_grad: float")
    .Output("inputs_grad: float")
    .Output("kernel_grad: float")
    .Output("recurrent_kernel_grad: float")
    .Output("bias_grad: float")
    .SetShapeFn([](InferenceContext* c) { return GradientShape(c, 2); })
    .Doc("The gradient of TfSineGru's hidden states with respect to its inputs and weights.");

REGISTER_OP("TfSineSimpleRnn")
    .Input("inputs: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("bias: float")
    .Output("states: float")
    .SetShapeFn([](InferenceContext* c) { return StatesShape(c, 1, {}); })
    .Doc("A Keras SimpleRNN layer (tanh) over time-major inputs (T, B, F), zero initial state.");

REGISTER_OP("TfSineSimpleRnnGrad")
    .Input("inputs: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("states: float")
    .Input("states_grad: float")
    .Output("inputs_grad: float")
    .Output("kernel_grad: float")
    .Output("recurrent_kernel_grad: float")
    .Output("bias_grad: float")
    .SetShapeFn([](InferenceContext* c) { return GradientShape(c, 0); })
    .Doc("The gradient of TfSineSimpleRnn's hidden states with respect to its inputs and weights.");

REGISTER_KERNEL_BUILDER(Name("TfSineLstm").Device(::tensorflow::DEVICE_CPU), LstmOp);
REGISTER_KERNEL_BUILDER(Name("TfSineLstmGrad").Device(::tensorflow::DEVICE_CPU), LstmGradOp);
REGISTER_KERNEL_BUILDER(Name("TfSineGru").Device(::tensorflow::DEVICE_CPU), GruOp);
REGISTER_KERNEL_BUILDER(Name("TfSineGruGrad").Device(::tensorflow::DEVICE_CPU), GruGradOp);
REGISTER_KERNEL_BUILDER(Name("TfSineSimpleRnn").Device(::tensorflow::DEVICE_CPU), SimpleRnnOp);
REGISTER_KERNEL_BUILDER(Name("TfSineSimpleRnnGrad").Device(::tensorflow::DEVICE_CPU), SimpleRnnGradOp);

}  // namespace tf_sine
