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
// `lr` is the learning rate; `step` the update's 1-based count (Adam's bias correction).
inline void UpdateVariable(const OptimizerSettings& s, float lr, float step, float* var, float* first,
                           float* second, const float* grad, int64_t n) {
  if (s.weight_decay != 0.0f) {  // variable.assign_sub(variable * wd * lr), before the update
    for (int64_t k = 0; k < n; ++k) var[k] -= var[k] * s.weight_decay * lr;
  }
  switch (s.kind) {
    case OptimizerKind::kAdagrad:
      for (int64_t k = 0; k < n; ++k) {
        const float g = grad[k];
        first[k] += g * g;
        var[k] -= (lr * g) / std::sqrt(first[k] + s.epsilon);
      }
      break;
    case OptimizerKind::kAdam: {
      const float beta_1_power = std::pow(s.beta_1, step), beta_2_power = std::pow(s.beta_2, step);
      const float alpha = lr * std::sqrt(1.0f - beta_2_power) / (1.0f - beta_1_power);
      for (int64_t k = 0; k < n; ++k) {
        const float g = grad[k];
        first[k] += (g - first[k]) * s.one_minus_beta_1;
        second[k] += (g * g - second[k]) * s.one_minus_beta_2;
        var[k] -= (first[k] * alpha) / (std::sqrt(second[k]) + s.epsilon);
      }
      break;
    }
    case OptimizerKind::kRmsprop:
      for (int64_t k = 0; k < n; ++k) {
        const float g = grad[k];
        first[k] = s.rho * first[k] + s.one_minus_rho * (g * g);
        var[k] -= (lr * g) / std::sqrt(first[k] + s.epsilon);
      }
      break;
    case OptimizerKind::kSgd:
      for (int64_t k = 0; k < n; ++k) var[k] -= grad[k] * lr;
      break;
  }
}

enum class ClipKind { kNone, kNorm, kGlobalNorm, kValue };

inline float SumOfSquares(const float* values, int64_t n) {
  float sum = 0.0f;
  for (int64_t k = 0; k < n; ++k) sum += values[k] * values[k];
  return sum;
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
