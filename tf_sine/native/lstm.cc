// tf_sine's LSTM training kernels: a Keras LSTM layer run forward over a whole sequence, and
// its gradient, each as one TensorFlow op.
//
// The function is `keras.layers.LSTM` with its defaults: gates z = x K + h R + b split as
// (i, f, c, o), sigmoid gates, tanh cell and output, zero initial state. The input projection
// x K of all time steps is one matrix product before the recurrence, and the weight gradients
// are one product each after it, so the sequential part is one small product per step.
// Elementwise math uses Eigen's vectorized sigmoid and tanh, the ones TensorFlow's own
// kernels use. Each op runs on the calling thread: the models it serves are too small to gain
// from splitting a step's products, and the training engine runs batch shards side by side.

#include <algorithm>
#include <cstring>

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

// Shapes of one call, checked against each other.
struct Dims {
  int64_t time, batch, features, units;
  int64_t gates() const { return 4 * units; }
};

absl::Status CheckDims(const Tensor& inputs, const Tensor& kernel, const Tensor& recurrent,
                       Dims* dims) {
  if (inputs.dims() != 3) {
    return absl::InvalidArgumentError("inputs must be (time, batch, features), got rank " +
                                      std::to_string(inputs.dims()));
  }
  dims->time = inputs.dim_size(0);
  dims->batch = inputs.dim_size(1);
  dims->features = inputs.dim_size(2);
  if (recurrent.dims() != 2 || recurrent.dim_size(1) != 4 * recurrent.dim_size(0)) {
    return absl::InvalidArgumentError("recurrent_kernel must be (units, 4 * units), got " +
                                      recurrent.shape().DebugString());
  }
  dims->units = recurrent.dim_size(0);
  if (kernel.dims() != 2 || kernel.dim_size(0) != dims->features ||
      kernel.dim_size(1) != dims->gates()) {
    return absl::InvalidArgumentError("kernel must be (features, 4 * units), got " +
                                      kernel.shape().DebugString());
  }
  return absl::OkStatus();
}

// Activates (rows, 4u) pre-activations in place: sigmoid on the i, f, o columns, tanh on c.
// sigmoid(z) = 0.5 + 0.5 tanh(z / 2), so one vectorized tanh pass covers whole contiguous rows
// (4u wide) instead of four column blocks with ragged ends.
void Activate(float* gates, int64_t rows, int64_t units, const Eigen::ArrayXf& scale,
              const Eigen::ArrayXf& offset) {
  const int64_t width = 4 * units;
  for (int64_t row = 0; row < rows; ++row) {
    Eigen::Map<Eigen::ArrayXf> z(gates + row * width, width);
    z = offset + scale * (scale * z).tanh();
  }
}

// The per-column scale and offset `Activate` uses.
void ActivationConstants(int64_t units, Eigen::ArrayXf* scale, Eigen::ArrayXf* offset) {
  scale->setConstant(4 * units, 0.5f);
  offset->setConstant(4 * units, 0.5f);
  scale->segment(2 * units, units).setConstant(1.0f);
  offset->segment(2 * units, units).setConstant(0.0f);
}

class LstmOp : public OpKernel {
 public:
  explicit LstmOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& recurrent = context->input(2);
    const Tensor& bias = context->input(3);
    Dims d;
    OP_REQUIRES_OK(context, CheckDims(inputs, kernel, recurrent, &d));
    OP_REQUIRES(context, bias.dims() == 1 && bias.dim_size(0) == d.gates(),
                absl::InvalidArgumentError("bias must be (4 * units,), got " +
                                           bias.shape().DebugString()));
    const TensorShape state_shape({d.time, d.batch, d.units});
    Tensor *states_tensor, *cells_tensor, *cell_tanh_tensor, *gates_tensor;
    OP_REQUIRES_OK(context, context->allocate_output(0, state_shape, &states_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, state_shape, &cells_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(2, state_shape, &cell_tanh_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(3, TensorShape({d.time, d.batch, d.gates()}),
                                                     &gates_tensor));
    if (d.time == 0 || d.batch == 0) return;
    float* states = states_tensor->flat<float>().data();
    float* cells = cells_tensor->flat<float>().data();
    float* cell_tanh = cell_tanh_tensor->flat<float>().data();
    float* gates = gates_tensor->flat<float>().data();
    const int64_t units = d.units, width = d.gates();
    const int64_t rows = d.time * d.batch, step = d.batch * units, gate_step = d.batch * width;
    Eigen::ArrayXf scale, offset;
    ActivationConstants(units, &scale, &offset);

    // The input projection of every time step at once, plus the bias.
    MatrixMap all_gates(gates, rows, width);
    all_gates.noalias() = ConstMatrixMap(inputs.flat<float>().data(), rows, d.features) *
                          ConstMatrixMap(kernel.flat<float>().data(), d.features, width);
    all_gates.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.flat<float>().data(), width);

    ConstMatrixMap recurrent_kernel(recurrent.flat<float>().data(), units, width);
    for (int64_t t = 0; t < d.time; ++t) {
      float* z = gates + t * gate_step;
      float* c = cells + t * step;
      if (t > 0) {
        MatrixMap(z, d.batch, width).noalias() +=
            ConstMatrixMap(states + (t - 1) * step, d.batch, units) * recurrent_kernel;
      }
      Activate(z, d.batch, units, scale, offset);
      for (int64_t b = 0; b < d.batch; ++b) {
        const float* zb = z + b * width;
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
    const Tensor& inputs = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& recurrent = context->input(2);
    const Tensor& states_tensor = context->input(3);
    const Tensor& cells_tensor = context->input(4);
    const Tensor& cell_tanh_tensor = context->input(5);
    const Tensor& gates_tensor = context->input(6);
    const Tensor& states_grad_tensor = context->input(7);
    Dims d;
    OP_REQUIRES_OK(context, CheckDims(inputs, kernel, recurrent, &d));
    const TensorShape state_shape({d.time, d.batch, d.units});
    OP_REQUIRES(context,
                states_tensor.shape() == state_shape && cells_tensor.shape() == state_shape &&
                    cell_tanh_tensor.shape() == state_shape &&
                    states_grad_tensor.shape() == state_shape &&
                    gates_tensor.shape() == TensorShape({d.time, d.batch, d.gates()}),
                absl::InvalidArgumentError("states, cells, cell_tanh, gates and states_grad "
                                           "must have the forward op's shapes"));
    Tensor *inputs_grad_tensor, *kernel_grad_tensor, *recurrent_grad_tensor, *bias_grad_tensor;
    OP_REQUIRES_OK(context, context->allocate_output(0, inputs.shape(), &inputs_grad_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, kernel.shape(), &kernel_grad_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(2, recurrent.shape(), &recurrent_grad_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(3, TensorShape({d.gates()}), &bias_grad_tensor));
    const int64_t units = d.units, width = d.gates();
    const int64_t rows = d.time * d.batch, step = d.batch * units, gate_step = d.batch * width;
    MatrixMap kernel_grad(kernel_grad_tensor->flat<float>().data(), d.features, width);
    MatrixMap recurrent_grad(recurrent_grad_tensor->flat<float>().data(), units, width);
    Eigen::Map<Eigen::RowVectorXf> bias_grad(bias_grad_tensor->flat<float>().data(), width);
    MatrixMap inputs_grad(inputs_grad_tensor->flat<float>().data(), rows, d.features);
    if (rows == 0) {
      kernel_grad.setZero();
      recurrent_grad.setZero();
      bias_grad.setZero();
      return;
    }
    // The pre-activation gradients of every step, and the gradients that step t + 1 sends
    // back into step t: hidden state (h_carry) and cell state (c_carry).
    Tensor dz_tensor, carry_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT, gates_tensor.shape(), &dz_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_FLOAT,
                                                   TensorShape({2, d.batch, units}), &carry_tensor));
    const float* cells = cells_tensor.flat<float>().data();
    const float* cell_tanh = cell_tanh_tensor.flat<float>().data();
    const float* gates = gates_tensor.flat<float>().data();
    const float* states_grad = states_grad_tensor.flat<float>().data();
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

    // The weight gradients: one product over all steps each.
    ConstMatrixMap dz(dz_all, rows, width);
    kernel_grad.noalias() = ConstMatrixMap(inputs.flat<float>().data(), rows, d.features).transpose() * dz;
    recurrent_grad.noalias() =
        ConstMatrixMap(states_tensor.flat<float>().data(), rows - d.batch, units).transpose() *
        ConstMatrixMap(dz_all + gate_step, rows - d.batch, width);
    bias_grad.noalias() = dz.colwise().sum();
    inputs_grad.noalias() = dz * ConstMatrixMap(kernel.flat<float>().data(), d.features, width).transpose();
  }
};

absl::Status LstmShape(InferenceContext* c) {
  ShapeHandle inputs, kernel, recurrent;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &inputs));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &kernel));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &recurrent));
  DimensionHandle units = c->Dim(recurrent, 0), gates = c->Dim(recurrent, 1);
  c->set_output(0, c->MakeShape({c->Dim(inputs, 0), c->Dim(inputs, 1), units}));
  c->set_output(1, c->MakeShape({c->Dim(inputs, 0), c->Dim(inputs, 1), units}));
  c->set_output(2, c->output(0));
  c->set_output(3, c->MakeShape({c->Dim(inputs, 0), c->Dim(inputs, 1), gates}));
  return absl::OkStatus();
}

absl::Status LstmGradShape(InferenceContext* c) {
  c->set_output(0, c->input(0));  // inputs_grad, kernel_grad, recurrent_kernel_grad: as those
  c->set_output(1, c->input(1));
  c->set_output(2, c->input(2));
  ShapeHandle recurrent;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &recurrent));
  c->set_output(3, c->Vector(c->Dim(recurrent, 1)));
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
    .SetShapeFn(LstmShape)
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
    .SetShapeFn(LstmGradShape)
    .Doc("The gradient of TfSineLstm's hidden states with respect to its inputs and weights.");

REGISTER_KERNEL_BUILDER(Name("TfSineLstm").Device(::tensorflow::DEVICE_CPU), LstmOp);
REGISTER_KERNEL_BUILDER(Name("TfSineLstmGrad").Device(::tensorflow::DEVICE_CPU), LstmGradOp);

}  // namespace tf_sine
