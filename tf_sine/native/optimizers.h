// Keras's optimizer updates and gradient clipping on plain arrays, for the training op
// (rnn_ops.cc). Each follows the Keras 3 source operation by operation, in float32 and in the
// same order (keras/src/optimizers/{adagrad,adam,rmsprop,sgd}.py `update_step`,
// base_optimizer.py `_clip_gradients`/`_clip_by_norm`, backend/tensorflow/optimizer.py
// `_apply_weight_decay`), for the default settings tf_sine builds; the tests compare each with
// `optimizer.apply`. Constants Keras computes in Python doubles (1 - beta_1, 1 - rho) arrive
// already rounded to float32.

#ifndef TF_SINE_NATIVE_OPTIMIZERS_H_
#define TF_SINE_NATIVE_OPTIMIZERS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "Eigen/Core"

namespace tf_sine {

enum class OptimizerKind { kAdagrad, kAdam, kRmsprop, kSgd };

// An optimizer's settings, as the training op's attributes give them.
struct OptimizerSettings {
  OptimizerKind kind;
  float epsilon = 0, beta_1 = 0, beta_2 = 0, one_minus_beta_1 = 0, one_minus_beta_2 = 0;
  float rho = 0, one_minus_rho = 0;
  float weight_decay = 0;  // 0: none (AdamW's decoupled decay otherwise)
  int slots() const {
    return kind == OptimizerKind::kAdam ? 2 : kind == OptimizerKind::kSgd ? 0 : 1;
  }
};

// One variable's update: `var` (n values) along `grad`, with its slots (`first`, `second`).
// `lr` is the learning rate; `step` the update's 1-based count (Adam's bias correction). Eigen
// arrays keep the loops vectorized (a scalar square root would check errno at every value) with
// the same operations in the same order.
inline void UpdateVariable(const OptimizerSettings& s, float lr, float step, float* var, float* first,
                           float* second, const float* grad, int64_t n) {
  using Values = Eigen::Map<Eigen::ArrayXf>;
  Values v(var, n);
  const Eigen::Map<const Eigen::ArrayXf> g(grad, n);
  if (s.weight_decay != 0.0f) v -= v * s.weight_decay * lr;  // variable * wd * lr, before the update
  switch (s.kind) {
    case OptimizerKind::kAdagrad: {
      Values accumulator(first, n);
      accumulator += g.square();
      v -= (lr * g) / (accumulator + s.epsilon).sqrt();
      break;
    }
    case OptimizerKind::kAdam: {
      const float beta_1_power = std::pow(s.beta_1, step), beta_2_power = std::pow(s.beta_2, step);
      const float alpha = lr * std::sqrt(1.0f - beta_2_power) / (1.0f - beta_1_power);
      Values m(first, n), velocity(second, n);
      m += (g - m) * s.one_minus_beta_1;
      velocity += (g.square() - velocity) * s.one_minus_beta_2;
      v -= (m * alpha) / (velocity.sqrt() + s.epsilon);
      break;
    }
    case OptimizerKind::kRmsprop: {
      Values velocity(first, n);
      velocity = s.rho * velocity + s.one_minus_rho * g.square();
      v -= (lr * g) / (velocity + s.epsilon).sqrt();
      break;
    }
    case OptimizerKind::kSgd:
      v -= g * lr;
      break;
  }
}

enum class ClipKind { kNone, kNorm, kGlobalNorm, kValue };

inline float SumOfSquares(const float* values, int64_t n) {
  return Eigen::Map<const Eigen::ArrayXf>(values, n).square().sum();
}

// Keras's `_clip_gradients` over all gradients (`grads[i]` holds `sizes[i]` values).
inline void ClipGradients(ClipKind kind, float limit, const std::vector<float*>& grads,
                          const std::vector<int64_t>& sizes) {
  if (kind == ClipKind::kNorm) {  // each gradient: g * limit / max(||g||, limit)
    for (size_t i = 0; i < grads.size(); ++i) {
      const float l2sum = SumOfSquares(grads[i], sizes[i]);
      const float l2norm = l2sum > 0.0f ? std::sqrt(l2sum) : l2sum;
      const float denominator = std::max(l2norm, limit);
      for (int64_t k = 0; k < sizes[i]; ++k) grads[i][k] = grads[i][k] * limit / denominator;
    }
  } else if (kind == ClipKind::kGlobalNorm) {  // all by limit * min(1 / norm, 1 / limit)
    float total = 0.0f;
    for (size_t i = 0; i < grads.size(); ++i) total += SumOfSquares(grads[i], sizes[i]);
    const float norm = std::sqrt(total);
    const float scale = limit * std::min(1.0f / norm, 1.0f / limit) + (norm - norm);  // NaN if inf
    for (size_t i = 0; i < grads.size(); ++i) {
      for (int64_t k = 0; k < sizes[i]; ++k) grads[i][k] *= scale;
    }
  } else if (kind == ClipKind::kValue) {
    for (size_t i = 0; i < grads.size(); ++i) {
      for (int64_t k = 0; k < sizes[i]; ++k) grads[i][k] = std::min(std::max(grads[i][k], -limit), limit);
    }
  }
}

}  // namespace tf_sine

#endif  // TF_SINE_NATIVE_OPTIMIZERS_H_
