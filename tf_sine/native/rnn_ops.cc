// tf_sine's recurrent training kernels as TensorFlow ops: a Keras LSTM, GRU or SimpleRNN layer
// run forward over a whole sequence, and its gradient, each as one op (the math is in cells.h).
// Each op runs on the calling thread: the training engine runs batch shards side by side instead.

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "cells.h"
#include "optimizers.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
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

// The weights of a layer op's inputs 1-3 (kernel, recurrent_kernel, bias).
Weights WeightsOf(OpKernelContext* context) {
  return {context->input(1).flat<float>().data(), context->input(2).flat<float>().data(),
          context->input(3).flat<float>().data()};
}

// A gradient op's kernels (inputs 1-2); gradient ops take no bias.
Weights KernelsOf(OpKernelContext* context) {
  return {context->input(1).flat<float>().data(), context->input(2).flat<float>().data(), nullptr};
}

const float* Input(OpKernelContext* context, int index) { return context->input(index).flat<float>().data(); }

// Scratch space of `count` floats for the duration of one op call.
float* Scratch(OpKernelContext* context, int64_t count, Tensor* holder) {
  absl::Status status = context->allocate_temp(tensorflow::DT_FLOAT, TensorShape({std::max<int64_t>(count, 1)}), holder);
  if (!status.ok()) {
    context->SetStatus(status);
    return nullptr;
  }
  return holder->flat<float>().data();
}

// An op whose buffers outside TensorFlow's allocator (the products' strips, the training op's
// shares) may fail to allocate, and whose second thread may fail to start: either becomes
// TensorFlow's out-of-memory error (a machine limit). Any other exception is a bug of ours and
// becomes an internal error. An exception leaving Compute would abort the process.
class GuardedOp : public OpKernel {
 public:
  explicit GuardedOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) final {
    try {
      Run(context);
    } catch (const std::bad_alloc&) {
      context->SetStatus(absl::ResourceExhaustedError("out of memory for the tf_sine kernels' own buffers in " +
                                                      name()));
    } catch (const std::system_error& error) {  // the training op's second thread could not start
      context->SetStatus(absl::ResourceExhaustedError(std::string("the tf_sine kernels could not start a thread in ") +
                                                      name() + ": " + error.what()));
    } catch (const std::exception& error) {  // a bug of ours: an error status, not an abort
      context->SetStatus(absl::InternalError(std::string("tf_sine kernels: ") + error.what()));
    }
  }

 protected:
  virtual void Run(OpKernelContext* context) = 0;
};

// ---------------------------------------------------------------------------------------------
// The per-layer ops (the fast engine's graph calls one per layer, forward and backward)

class LstmOp : public GuardedOp {
 public:
  explicit LstmOp(OpKernelConstruction* context) : GuardedOp(context) {}

  void Run(OpKernelContext* context) override {
    Dims d;
    std::vector<float*> out;
    if (!StartForward(context, 4, 0, 4, {3}, &d, &out)) return;
    LstmForward(Input(context, 0), WeightsOf(context), d, out[0], out[1], out[2], out[3]);
  }
};

class LstmGradOp : public GuardedOp {
 public:
  explicit LstmGradOp(OpKernelConstruction* context) : GuardedOp(context) {}

  void Run(OpKernelContext* context) override {
    Dims d;
    Gradients grads;  // takes back states, cells, cell_tanh, gates (wide) and states_grad
    if (!StartGradient(context, 4, 0, 5, {3}, &d, &grads)) return;
    Tensor holder;
    float* scratch = Scratch(context, LstmScratch(d), &holder);
    if (scratch == nullptr) return;
    LstmBackward(Input(context, 0), KernelsOf(context), d, Input(context, 3), Input(context, 4),
                 Input(context, 5), Input(context, 6), Input(context, 7), scratch, grads);
  }
};

class GruOp : public GuardedOp {
 public:
  explicit GruOp(OpKernelConstruction* context) : GuardedOp(context) {}

  void Run(OpKernelContext* context) override {
    Dims d;
    std::vector<float*> out;
    if (!StartForward(context, 3, 2, 3, {1}, &d, &out)) return;
    Tensor holder;
    float* projected = Scratch(context, GruForwardScratch(d), &holder);
    if (projected == nullptr) return;
    GruForward(Input(context, 0), WeightsOf(context), d, out[0], out[1], out[2], projected);
  }
};

class GruGradOp : public GuardedOp {
 public:
  explicit GruGradOp(OpKernelConstruction* context) : GuardedOp(context) {}

  void Run(OpKernelContext* context) override {
    Dims d;
    Gradients grads;  // takes back states, gates (wide), recurrent_candidate and states_grad
    if (!StartGradient(context, 3, 2, 4, {1}, &d, &grads)) return;
    Tensor holder;
    float* scratch = Scratch(context, GruScratch(d), &holder);
    if (scratch == nullptr) return;
    GruBackward(Input(context, 0), KernelsOf(context), d, Input(context, 3), Input(context, 4),
                Input(context, 5), Input(context, 6), scratch, grads);
  }
};

class SimpleRnnOp : public GuardedOp {
 public:
  explicit SimpleRnnOp(OpKernelConstruction* context) : GuardedOp(context) {}

  void Run(OpKernelContext* context) override {
    Dims d;
    std::vector<float*> out;
    if (!StartForward(context, 1, 0, 1, {}, &d, &out)) return;
    SimpleRnnForward(Input(context, 0), WeightsOf(context), d, out[0]);
  }
};

class SimpleRnnGradOp : public GuardedOp {
 public:
  explicit SimpleRnnGradOp(OpKernelConstruction* context) : GuardedOp(context) {}

  void Run(OpKernelContext* context) override {
    Dims d;
    Gradients grads;  // takes back states and states_grad
    if (!StartGradient(context, 1, 0, 2, {}, &d, &grads)) return;
    Tensor holder;
    float* scratch = Scratch(context, SimpleRnnScratch(d), &holder);
    if (scratch == nullptr) return;
    SimpleRnnBackward(Input(context, 0), KernelsOf(context), d, Input(context, 3), Input(context, 4), scratch,
                      grads);
  }
};

// ---------------------------------------------------------------------------------------------
// The training op: a whole chunk of optimizer steps of a stacked recurrent model in one call
//
// The model is what tf_sine's factory builds without dropout: recurrent layers (LSTM, GRU,
// SimpleRNN; all but the last return sequences), a linear Dense head, the mean squared error,
// and one of Keras's optimizers. Each step gathers its batch, runs the layers forward and back
// (cells.h), clips the gradients and updates the Keras variables in place (optimizers.h), so the
// graph runs one op a chunk instead of dozens a step.

// Buffers aligned as TensorFlow aligns tensors: Eigen's small products peel unaligned leading
// elements, so the summation order, and the last bit of a result, would follow the address.
// Aligned, a step's result is the same in every process, which bit-exact resume needs.
using Buffer = std::vector<float, Eigen::aligned_allocator<float>>;

// One recurrent layer's buffers for one step: what the forward pass keeps for the backward.
struct LayerBuffers {
  std::string cell;
  Dims d;
  Buffer states, cells, cell_tanh, gates, extra, states_grad;
};

// One thread's share of a batch: its layers' buffers and the gradients of its rows.
struct Share {
  std::vector<LayerBuffers> stack;
  Buffer inputs, scratch, prediction, prediction_grad;
  std::vector<Buffer> grads;
  double total = 0.0;  // the sum of squared errors of its rows
};

// A second thread for the other half of each batch: `Run` hands it a task, `Wait` waits for
// it. It lives for one op call (a chunk of steps), so its start is paid once a chunk.
class Helper {
 public:
  Helper() : thread_([this] { Loop(); }) {}
  ~Helper() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void Run(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = std::move(task);
      pending_ = true;
    }
    wake_.notify_all();
  }
  // Rethrows what the task threw, here: the op's thread turns it into an error status.
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return !pending_; });
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [this] { return pending_ || stop_; });
      if (!pending_) return;
      lock.unlock();
      std::exception_ptr error;
      try {
        task_();
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      error_ = error;
      pending_ = false;
      done_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::function<void()> task_;
  std::exception_ptr error_;
  bool pending_ = false, stop_ = false;
  std::thread thread_;
};

class TrainOp : public GuardedOp {
 public:
  explicit TrainOp(OpKernelConstruction* context) : GuardedOp(context) {
    std::string optimizer, clip;
    std::vector<float> hyper;
    OP_REQUIRES_OK(context, context->GetAttr("cells", &cells_));
    OP_REQUIRES_OK(context, context->GetAttr("optimizer", &optimizer));
    OP_REQUIRES_OK(context, context->GetAttr("hyper", &hyper));
    OP_REQUIRES_OK(context, context->GetAttr("clip", &clip));
    OP_REQUIRES_OK(context, context->GetAttr("clip_value", &clip_value_));
    OP_REQUIRES_OK(context, context->GetAttr("halves", &halves_));
    OP_REQUIRES(context, hyper.size() == 8, absl::InvalidArgumentError("hyper must hold 8 values"));
    const std::map<std::string, OptimizerKind> kinds = {{"adagrad", OptimizerKind::kAdagrad},
                                                        {"adam", OptimizerKind::kAdam},
                                                        {"rmsprop", OptimizerKind::kRmsprop},
                                                        {"sgd", OptimizerKind::kSgd}};
    OP_REQUIRES(context, kinds.count(optimizer), absl::InvalidArgumentError("unknown optimizer " + optimizer));
    settings_.kind = kinds.at(optimizer);
    settings_.epsilon = hyper[0];
    settings_.beta_1 = hyper[1];
    settings_.beta_2 = hyper[2];
    settings_.one_minus_beta_1 = hyper[3];
    settings_.one_minus_beta_2 = hyper[4];
    settings_.rho = hyper[5];
    settings_.one_minus_rho = hyper[6];
    settings_.weight_decay = hyper[7];
    const std::map<std::string, ClipKind> clips = {{"none", ClipKind::kNone},
                                                   {"clipnorm", ClipKind::kNorm},
                                                   {"global_clipnorm", ClipKind::kGlobalNorm},
                                                   {"clipvalue", ClipKind::kValue}};
    OP_REQUIRES(context, clips.count(clip), absl::InvalidArgumentError("unknown clip " + clip));
    clip_ = clips.at(clip);
    for (const std::string& cell : cells_) {
      OP_REQUIRES(context, cell == "lstm" || cell == "gru" || cell == "simple_rnn",
                  absl::InvalidArgumentError("unknown cell " + cell));
    }
  }

  void Run(OpKernelContext* context) override {
    const Tensor &x = context->input(0), &y = context->input(1);
    const Tensor &batches = context->input(2), &sizes = context->input(3);
    const int layers = static_cast<int>(cells_.size());
    const int variable_count = 3 * layers + 2;
    const int slot_count = variable_count * settings_.slots();
    const int iterations_input = 4 + variable_count + slot_count;
    OP_REQUIRES(context, context->num_inputs() == iterations_input + 2,
                absl::InvalidArgumentError("expected " + std::to_string(variable_count) + " variables and " +
                                           std::to_string(slot_count) + " optimizer slots"));
    OP_REQUIRES(context, x.dims() == 3 && y.dims() == 2 && x.dim_size(0) == y.dim_size(0),
                absl::InvalidArgumentError("x must be (N, T, F) and y (N, K)"));
    OP_REQUIRES(context, batches.dims() == 2 && sizes.dims() == 1 && sizes.dim_size(0) == batches.dim_size(0),
                absl::InvalidArgumentError("batches must be (steps, batch) and sizes (steps,)"));
    const int64_t steps = batches.dim_size(0), batch = batches.dim_size(1), windows = x.dim_size(0);
    auto indices = batches.matrix<int32_t>();
    auto real = sizes.flat<int32_t>();
    for (int64_t s = 0; s < steps; ++s) {  // before anything changes
      OP_REQUIRES(context, real(s) > 0 && real(s) <= batch,
                  absl::InvalidArgumentError("sizes must lie in 1.." + std::to_string(batch)));
      for (int64_t b = 0; b < real(s); ++b) {
        OP_REQUIRES(context, indices(s, b) >= 0 && indices(s, b) < windows,
                    absl::InvalidArgumentError("batch index " + std::to_string(indices(s, b)) + " outside the " +
                                               std::to_string(windows) + " windows"));
      }
    }

    // Every variable, locked for the whole chunk (in address order, as TensorFlow's own
    // training ops lock several), with a buffer of its own to update in place.
    std::vector<tensorflow::core::RefCountPtr<tensorflow::Var>> vars(iterations_input + 2 - 4);
    for (int i = 4; i < iterations_input + 2; ++i) {
      OP_REQUIRES_OK(context, tensorflow::LookupResource(context, tensorflow::HandleFromInput(context, i),
                                                         &vars[i - 4]));
    }
    std::vector<tensorflow::Var*> order;
    for (auto& var : vars) order.push_back(var.get());
    std::sort(order.begin(), order.end());
    order.erase(std::unique(order.begin(), order.end()), order.end());
    std::vector<std::unique_ptr<tensorflow::mutex_lock>> locks;
    for (tensorflow::Var* var : order) locks.push_back(std::make_unique<tensorflow::mutex_lock>(*var->mu()));
    std::vector<float*> values(variable_count + slot_count);
    std::vector<int64_t> counts(variable_count);
    for (int i = 0; i < variable_count + slot_count; ++i) {
      OP_REQUIRES_OK(context, OwnBuffer(context, vars[i].get(), tensorflow::DT_FLOAT));
      values[i] = vars[i]->tensor()->flat<float>().data();
      if (i < variable_count) counts[i] = vars[i]->tensor()->NumElements();
    }
    tensorflow::Var* iterations = vars[iterations_input - 4].get();
    OP_REQUIRES_OK(context, OwnBuffer(context, iterations, tensorflow::DT_INT64));
    const Tensor* rate = vars[iterations_input + 1 - 4]->tensor();
    OP_REQUIRES(context, rate->dtype() == tensorflow::DT_FLOAT && rate->NumElements() == 1,
                absl::InvalidArgumentError("learning_rate must be a float scalar"));
    const float learning_rate = rate->flat<float>()(0);

    // The layers' shapes, checked against their weights.
    std::vector<Dims> dims(layers);
    int64_t inputs_width = x.dim_size(2);
    for (int l = 0; l < layers; ++l) {
      const Tensor* recurrent = vars[3 * l + 1]->tensor();
      const int64_t gate_count = cells_[l] == "lstm" ? 4 : cells_[l] == "gru" ? 3 : 1;
      OP_REQUIRES(context, recurrent->dims() == 2, absl::InvalidArgumentError("recurrent kernels must be 2-D"));
      dims[l] = Dims{x.dim_size(1), batch, inputs_width, recurrent->dim_size(0), gate_count};
      const int64_t bias_size = (cells_[l] == "gru" ? 2 : 1) * dims[l].gates();
      OP_REQUIRES(context,
                  counts[3 * l] == dims[l].features * dims[l].gates() &&
                      counts[3 * l + 1] == dims[l].units * dims[l].gates() && counts[3 * l + 2] == bias_size,
                  absl::InvalidArgumentError("layer " + std::to_string(l) + "'s weights do not fit a " + cells_[l] +
                                             " layer on " + std::to_string(dims[l].features) + " inputs"));
      inputs_width = dims[l].units;
    }
    OP_REQUIRES(context, counts[3 * layers] == inputs_width * y.dim_size(1) && counts[3 * layers + 1] == y.dim_size(1),
                absl::InvalidArgumentError("the head's weights must be (units, K) and (K,)"));

    Tensor* losses_tensor;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({steps}), &losses_tensor));
    auto losses = losses_tensor->flat<float>();
    std::vector<Share> shares(halves_ ? 2 : 1);
    for (Share& share : shares) {
      share.stack.resize(layers);
      for (int l = 0; l < layers; ++l) share.stack[l] = LayerBuffers{cells_[l], dims[l]};
      share.grads.resize(variable_count);
      for (int i = 0; i < variable_count; ++i) share.grads[i].resize(counts[i]);
    }
    std::vector<float*> grads(variable_count);
    for (int i = 0; i < variable_count; ++i) grads[i] = shares[0].grads[i].data();
    std::unique_ptr<Helper> helper = halves_ ? std::make_unique<Helper>() : nullptr;
    int64_t* iteration = iterations->tensor()->flat<int64_t>().data();
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t rows = real(s);
      const float count = static_cast<float>(rows * y.dim_size(1));
      const int32_t* step_indices = &indices(s, 0);
      if (helper != nullptr && rows >= 2) {  // the second half on the helper, the first here
        const int64_t first = rows / 2;
        helper->Run([&] { Pass(values, x, y, step_indices + first, rows - first, count, &shares[1]); });
        std::exception_ptr error;  // the helper still reads the shares: wait for it before unwinding
        try {
          Pass(values, x, y, step_indices, first, count, &shares[0]);
        } catch (...) {
          error = std::current_exception();
        }
        helper->Wait();
        if (error) std::rethrow_exception(error);
        for (int i = 0; i < variable_count; ++i) {
          Eigen::Map<Eigen::ArrayXf>(grads[i], counts[i]) += Eigen::Map<Eigen::ArrayXf>(shares[1].grads[i].data(), counts[i]);
        }
        losses(s) = static_cast<float>((shares[0].total + shares[1].total) / count);
      } else {
        Pass(values, x, y, step_indices, rows, count, &shares[0]);
        losses(s) = static_cast<float>(shares[0].total / count);
      }
      ClipGradients(clip_, clip_value_, grads, counts);
      const float step_count = static_cast<float>(*iteration + 1);
      for (int i = 0; i < variable_count; ++i) {
        float* first_slot = settings_.slots() > 0 ? values[variable_count + i] : nullptr;
        float* second_slot = settings_.slots() > 1 ? values[2 * variable_count + i] : nullptr;
        UpdateVariable(settings_, learning_rate, step_count, values[i], first_slot, second_slot, grads[i], counts[i]);
      }
      *iteration += 1;
    }
  }

 private:
  // Makes `var`'s buffer its own before it is changed in place (a tensor read from it earlier
  // may share it), as TensorFlow's training ops do.
  static absl::Status OwnBuffer(OpKernelContext* context, tensorflow::Var* var, tensorflow::DataType dtype) {
    Tensor* tensor = var->tensor();
    if (tensor->dtype() != dtype || !tensor->IsInitialized()) {
      return absl::InvalidArgumentError("a variable of the training op is uninitialized or of another type");
    }
    if (!tensor->RefCountIsOne() || var->copy_on_read_mode.load()) {
      Tensor copy;
      TF_RETURN_IF_ERROR(context->allocate_temp(dtype, tensor->shape(), &copy));
      std::memcpy(copy.data(), tensor->data(), tensor->TotalBytes());
      *tensor = copy;
    }
    return absl::OkStatus();
  }

  static Weights WeightsAt(const std::vector<float*>& values, int layer) {
    return {values[3 * layer], values[3 * layer + 1], values[3 * layer + 2]};
  }

  // Forward and backward over the windows `indices[0..rows)`: the sum of squared errors into
  // share->total and the gradients of the batch's mean (over `count` values) into share->grads.
  static void Pass(const std::vector<float*>& values, const Tensor& x, const Tensor& y, const int32_t* indices,
                   int64_t rows, float count, Share* share) {
    const int layers = static_cast<int>(share->stack.size());
    const int64_t time = x.dim_size(1), features = x.dim_size(2), outputs = y.dim_size(1);
    const float* x_data = x.flat<float>().data();
    const float* y_data = y.flat<float>().data();
    share->inputs.resize(time * rows * features);
    for (int64_t b = 0; b < rows; ++b) {  // time-major: inputs[t][b] = x[indices[b]][t]
      const float* window = x_data + indices[b] * time * features;
      for (int64_t t = 0; t < time; ++t) {
        std::copy(window + t * features, window + (t + 1) * features, share->inputs.data() + (t * rows + b) * features);
      }
    }
    const float* layer_inputs = share->inputs.data();
    for (int l = 0; l < layers; ++l) {
      LayerBuffers& layer = share->stack[l];
      layer.d.batch = rows;
      Forward(layer, WeightsAt(values, l), layer_inputs, &share->scratch);
      layer_inputs = layer.states.data();
    }
    // The head on the last layer's final states, the squared errors and their gradient.
    LayerBuffers& top = share->stack[layers - 1];
    const int64_t units = top.d.units;
    const float* last = top.states.data() + (top.d.time - 1) * rows * units;
    const float* head_kernel = values[3 * layers];
    share->prediction.resize(rows * outputs);
    share->prediction_grad.resize(rows * outputs);
    MatrixMap predicted(share->prediction.data(), rows, outputs);
    predicted.noalias() = ConstMatrixMap(last, rows, units) * ConstMatrixMap(head_kernel, units, outputs);
    predicted.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(values[3 * layers + 1], outputs);
    double total = 0.0;
    for (int64_t b = 0; b < rows; ++b) {
      const float* target = y_data + indices[b] * outputs;
      for (int64_t k = 0; k < outputs; ++k) {
        const float error = share->prediction[b * outputs + k] - target[k];
        total += error * error;
        share->prediction_grad[b * outputs + k] = 2.0f * error / count;
      }
    }
    share->total = total;
    ConstMatrixMap predicted_grad(share->prediction_grad.data(), rows, outputs);
    MatrixMap(share->grads[3 * layers].data(), units, outputs).noalias() =
        ConstMatrixMap(last, rows, units).transpose() * predicted_grad;
    SumRows(share->prediction_grad.data(), rows, outputs, share->grads[3 * layers + 1].data());
    // Only the last step's states reach the head, and only this line writes the top layer's
    // states_grad (Backward reads it; a layer's inputs_grad is the buffer of the layer below):
    // the rest stays zero from one step to the next. A batch of another size re-zeroes it.
    if (top.states_grad.size() != static_cast<size_t>(top.d.rows() * units)) {
      top.states_grad.assign(top.d.rows() * units, 0.0f);
    }
    MatrixMap(top.states_grad.data() + (top.d.time - 1) * rows * units, rows, units).noalias() =
        predicted_grad * ConstMatrixMap(head_kernel, units, outputs).transpose();
    for (int l = layers - 1; l >= 0; --l) {
      float* inputs_grad = nullptr;  // the first layer's is not needed
      if (l > 0) {
        LayerBuffers& below = share->stack[l - 1];
        below.states_grad.resize(below.d.rows() * below.d.units);
        inputs_grad = below.states_grad.data();
      }
      const float* below_states = l > 0 ? share->stack[l - 1].states.data() : share->inputs.data();
      Gradients g{inputs_grad, share->grads[3 * l].data(), share->grads[3 * l + 1].data(), share->grads[3 * l + 2].data()};
      Backward(share->stack[l], WeightsAt(values, l), below_states, g, &share->scratch);
    }
  }

  static void Forward(LayerBuffers& layer, const Weights& w, const float* inputs, Buffer* scratch) {
    const Dims& d = layer.d;
    const int64_t sequence = d.rows() * d.units;
    layer.states.resize(sequence);
    if (layer.cell == "lstm") {
      layer.cells.resize(sequence);
      layer.cell_tanh.resize(sequence);
      layer.gates.resize(d.rows() * d.gates());
      LstmForward(inputs, w, d, layer.states.data(), layer.cells.data(), layer.cell_tanh.data(), layer.gates.data());
    } else if (layer.cell == "gru") {
      layer.gates.resize(d.rows() * d.gates());
      layer.extra.resize(sequence);
      scratch->resize(std::max<int64_t>(scratch->size(), GruForwardScratch(d)));
      GruForward(inputs, w, d, layer.states.data(), layer.gates.data(), layer.extra.data(), scratch->data());
    } else {
      SimpleRnnForward(inputs, w, d, layer.states.data());
    }
  }

  static void Backward(LayerBuffers& layer, const Weights& w, const float* inputs, const Gradients& g,
                       Buffer* scratch) {
    const Dims& d = layer.d;
    if (layer.cell == "lstm") {
      scratch->resize(std::max<int64_t>(scratch->size(), LstmScratch(d)));
      LstmBackward(inputs, w, d, layer.states.data(), layer.cells.data(), layer.cell_tanh.data(),
                   layer.gates.data(), layer.states_grad.data(), scratch->data(), g);
    } else if (layer.cell == "gru") {
      scratch->resize(std::max<int64_t>(scratch->size(), GruScratch(d)));
      GruBackward(inputs, w, d, layer.states.data(), layer.gates.data(), layer.extra.data(),
                  layer.states_grad.data(), scratch->data(), g);
    } else {
      scratch->resize(std::max<int64_t>(scratch->size(), SimpleRnnScratch(d)));
      SimpleRnnBackward(inputs, w, d, layer.states.data(), layer.states_grad.data(), scratch->data(), g);
    }
  }

  std::vector<std::string> cells_;
  OptimizerSettings settings_;
  ClipKind clip_ = ClipKind::kNone;
  float clip_value_ = 0.0f;
  bool halves_ = false;
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

REGISTER_OP("TfSineTrain")
    .Input("x: float")
    .Input("y: float")
    .Input("batches: int32")
    .Input("sizes: int32")
    .Input("variables: variable_count * resource")
    .Input("slots: slot_count * resource")
    .Input("iterations: resource")
    .Input("learning_rate: resource")
    .Output("losses: float")
    .Attr("cells: list(string)")
    .Attr("optimizer: string")
    .Attr("hyper: list(float)")
    .Attr("clip: string")
    .Attr("clip_value: float")
    .Attr("variable_count: int >= 5")
    .Attr("slot_count: int >= 0")
    .Attr("halves: bool = false")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->Dim(c->input(2), 0)));
      return absl::OkStatus();
    })
    .Doc("Optimizer steps of a stacked recurrent model with a Dense head and the mean squared "
         "error, one per row of batches (window indices; the first sizes[s] of row s are real): "
         "gathers, forward, backward, clipping and Keras's update of the variables in place, and "
         "the iteration count; with halves, each batch's second half runs on a second thread. "
         "Returns each step's loss.");

REGISTER_KERNEL_BUILDER(Name("TfSineLstm").Device(::tensorflow::DEVICE_CPU), LstmOp);
REGISTER_KERNEL_BUILDER(Name("TfSineLstmGrad").Device(::tensorflow::DEVICE_CPU), LstmGradOp);
REGISTER_KERNEL_BUILDER(Name("TfSineGru").Device(::tensorflow::DEVICE_CPU), GruOp);
REGISTER_KERNEL_BUILDER(Name("TfSineGruGrad").Device(::tensorflow::DEVICE_CPU), GruGradOp);
REGISTER_KERNEL_BUILDER(Name("TfSineSimpleRnn").Device(::tensorflow::DEVICE_CPU), SimpleRnnOp);
REGISTER_KERNEL_BUILDER(Name("TfSineSimpleRnnGrad").Device(::tensorflow::DEVICE_CPU), SimpleRnnGradOp);
REGISTER_KERNEL_BUILDER(Name("TfSineTrain").Device(::tensorflow::DEVICE_CPU), TrainOp);

}  // namespace tf_sine
