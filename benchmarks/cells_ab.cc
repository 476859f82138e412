// A/B of two versions of the native kernels' math (tf_sine/native/cells.h) in one process.
//
// The machines this project is measured on drift by tens of percent within minutes, so two
// versions timed in separate processes minutes apart cannot be compared at the few-percent level.
// Here both run alternately in one process on the same buffers: one LSTM layer forward and
// backward over one batch half of the large case (T=100, B=16, F=128, 128 units), on two threads
// in lockstep (as the training op runs its two halves), and the medians of the pairs' wall times
// are compared. It also prints the largest relative difference of the two versions' outputs.
//
// The old version is another checkout's cells.h and products.h, renamed into their own namespace
// (REV: a commit; EIGEN: TensorFlow's headers, `python -c "import tensorflow as tf;
// print(tf.sysconfig.get_include())"`):
//
//   mkdir -p /tmp/old_cells
//   for f in cells.h products.h; do git show REV:tf_sine/native/$f |
//     sed -e 's/namespace tf_sine/namespace tf_sine_old/g' -e 's/TF_SINE_NATIVE_/TF_SINE_OLD_NATIVE_/g'
//     > /tmp/old_cells/$f; done
//   c++ -O3 -march=native -std=c++17 -pthread -I$EIGEN -DOLD_CELLS='"/tmp/old_cells/cells.h"'
//     benchmarks/cells_ab.cc -o /tmp/cells_ab
//   /tmp/cells_ab [pairs=30] [threads=2] [timesteps=100]
//
// (add -mno-avx512fp16 where TensorFlow's Eigen does not compile with AVX512-FP16.)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include OLD_CELLS
#include "../tf_sine/native/cells.h"

namespace {

using Clock = std::chrono::steady_clock;

// One thread's buffers: its batch half's inputs and every output and gradient of one layer.
struct Layer {
  int64_t time, batch, features, units, width;
  std::vector<float> inputs, kernel, recurrent, bias, from_above;
  std::vector<float> states, cells, cell_tanh, gates, scratch, inputs_grad, kernel_grad, recurrent_grad, bias_grad;

  Layer(int64_t time, int64_t batch, int64_t features, int64_t units)
      : time(time), batch(batch), features(features), units(units), width(4 * units) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uniform(-0.1f, 0.1f);
    auto random = [&](int64_t n) {
      std::vector<float> values(n);
      for (float& value : values) value = uniform(rng);
      return values;
    };
    inputs = random(time * batch * features);
    kernel = random(features * width);
    recurrent = random(units * width);
    bias = random(width);
    from_above = random(time * batch * units);
    for (auto* sequence : {&states, &cells, &cell_tanh}) sequence->resize(time * batch * units);
    gates.resize(time * batch * width);
    scratch.resize(time * batch * width + 2 * batch * units);  // enough for either version
    inputs_grad.resize(time * batch * features);
    kernel_grad.resize(features * width);
    recurrent_grad.resize(units * width);
    bias_grad.resize(width);
  }

  // Forward and backward with version `Old` (tf_sine_old) or the current one (tf_sine).
  template <bool Old>
  void Run() {
    if constexpr (Old) {
      Call<tf_sine_old::Dims, tf_sine_old::Weights, tf_sine_old::Gradients>(
          [](auto&&... args) { tf_sine_old::LstmForward(args...); },
          [](auto&&... args) { tf_sine_old::LstmBackward(args...); });
    } else {
      Call<tf_sine::Dims, tf_sine::Weights, tf_sine::Gradients>(
          [](auto&&... args) { tf_sine::LstmForward(args...); },
          [](auto&&... args) { tf_sine::LstmBackward(args...); });
    }
  }

  template <typename Dims, typename Weights, typename Gradients, typename Forward, typename Backward>
  void Call(Forward forward, Backward backward) {
    const Dims d{time, batch, features, units, 4};
    const Weights w{kernel.data(), recurrent.data(), bias.data()};
    const Gradients g{inputs_grad.data(), kernel_grad.data(), recurrent_grad.data(), bias_grad.data()};
    forward(inputs.data(), w, d, states.data(), cells.data(), cell_tanh.data(), gates.data());
    backward(inputs.data(), w, d, states.data(), cells.data(), cell_tanh.data(), gates.data(), from_above.data(),
             scratch.data(), g);
  }
};

// Holds each thread until all `count` have arrived (C++20's std::barrier, for C++17 compilers).
class Lockstep {
 public:
  explicit Lockstep(int count) : count_(count) {}
  void ArriveAndWait() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t round = round_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++round_;
      all_arrived_.notify_all();
    } else {
      all_arrived_.wait(lock, [&] { return round_ != round; });
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable all_arrived_;
  const int count_;
  int arrived_ = 0;
  int64_t round_ = 0;
};

// The largest |a - b| relative to the largest |a|.
double RelativeDifference(const std::vector<float>& a, const std::vector<float>& b) {
  double difference = 0.0, scale = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference = std::max(difference, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(a[i])));
  }
  return difference / scale;
}

}  // namespace

int main(int argc, char** argv) {
  const int pairs = argc > 1 ? std::atoi(argv[1]) : 30;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  const int64_t time = argc > 3 ? std::atoi(argv[3]) : 100;
  {
    Layer layer(time, 16, 128, 128);
    layer.Run<true>();
    const Layer old = layer;
    layer.Run<false>();
    std::printf("largest relative difference, new against old: states %.3g, gradients: inputs %.3g, kernel %.3g, "
                "recurrent kernel %.3g, bias %.3g\n",
                RelativeDifference(old.states, layer.states), RelativeDifference(old.inputs_grad, layer.inputs_grad),
                RelativeDifference(old.kernel_grad, layer.kernel_grad),
                RelativeDifference(old.recurrent_grad, layer.recurrent_grad),
                RelativeDifference(old.bias_grad, layer.bias_grad));
  }
  std::vector<Layer> layers;
  for (int i = 0; i < threads; ++i) layers.emplace_back(time, 16, 128, 128);
  std::vector<double> seconds[2];
  Lockstep lockstep(threads);
  Clock::time_point start;
  auto work = [&](int id) {
    for (int pair = 0; pair < pairs; ++pair) {
      for (int version = 0; version < 2; ++version) {
        lockstep.ArriveAndWait();
        if (id == 0) start = Clock::now();
        lockstep.ArriveAndWait();
        if (version == 0) {
          layers[id].Run<true>();
        } else {
          layers[id].Run<false>();
        }
        lockstep.ArriveAndWait();
        if (id == 0) seconds[version].push_back(std::chrono::duration<double>(Clock::now() - start).count());
      }
    }
  };
  std::vector<std::thread> helpers;
  for (int id = 1; id < threads; ++id) helpers.emplace_back(work, id);
  work(0);
  for (std::thread& helper : helpers) helper.join();
  for (auto& runs : seconds) std::sort(runs.begin(), runs.end());
  const double old_ms = 1e3 * seconds[0][pairs / 2], new_ms = 1e3 * seconds[1][pairs / 2];
  std::printf("%d threads, T=%ld: median old %.3f ms, new %.3f ms, new/old %.3f\n", threads,
              static_cast<long>(time), old_ms, new_ms, new_ms / old_ms);
  return 0;
}
