#include <algorithm>
#include <unordered_map>

#include "worker/internal/model_math.h"
#include "worker/internal/models.h"

namespace phalanx::worker::internal {
namespace {

// Finds a key's row in SparseRows: binary search when the keys are sorted (as
// SparseKeys returns them), a hash map otherwise.
class RowIndex {
 public:
  explicit RowIndex(const std::vector<uint64_t>& keys) : keys_(keys) {
    sorted_ = std::is_sorted(keys.begin(), keys.end());
    if (!sorted_) {
      map_.reserve(keys.size());
      for (size_t i = 0; i < keys.size(); ++i) map_.emplace(keys[i], static_cast<int64_t>(i));
    }
  }
  // Row of `key`, or -1.
  int64_t Find(uint64_t key) const {
    if (sorted_) {
      const auto it = std::lower_bound(keys_.begin(), keys_.end(), key);
      return it != keys_.end() && *it == key ? it - keys_.begin() : -1;
    }
    const auto it = map_.find(key);
    return it == map_.end() ? -1 : it->second;
  }

 private:
  const std::vector<uint64_t>& keys_;
  bool sorted_ = true;
  std::unordered_map<uint64_t, int64_t> map_;
};

// Mean of embedding rows, then a linear layer: z = W mean_j(v_j e[id_j]) + b.
class EmbeddingBagModel final : public Model {
 public:
  EmbeddingBagModel(size_t dim, size_t num_classes, float l2)
      : e_(dim), c_(num_classes), out_(num_classes == 2 ? 1 : num_classes), l2_(l2) {}

  std::string name() const override { return "embedding-bag"; }
  size_t dense_size() const override { return out_ * e_ + out_; }
  size_t embedding_dim() const override { return e_; }

  std::vector<uint64_t> SparseKeys(const Dataset& data,
                                   std::span<const size_t> idx) const override {
    std::vector<uint64_t> keys;
    for (size_t i : idx) {
      if (i < data.ids.size()) keys.insert(keys.end(), data.ids[i].begin(), data.ids[i].end());
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  }

  Status Validate(const Dataset& data) const override {
    if (data.dense() || data.ids.size() != data.size()) {
      return InvalidArgument("embedding-bag needs sparse ids for every example of '" + data.name +
                             "'");
    }
    if (!data.values.empty() && data.values.size() != data.size()) {
      return InvalidArgument("data set '" + data.name + "' has values for " +
                             std::to_string(data.values.size()) + " of " +
                             std::to_string(data.size()) + " examples");
    }
    for (size_t i = 0; i < data.size(); ++i) {
      PHX_RETURN_IF_ERROR(CheckLabel(data, i, c_));
      if (!data.values.empty() && !data.values[i].empty() &&
          data.values[i].size() != data.ids[i].size()) {
        return InvalidArgument("example " + std::to_string(i) + " of '" + data.name + "' has " +
                               std::to_string(data.ids[i].size()) + " ids but " +
                               std::to_string(data.values[i].size()) + " values");
      }
    }
    return Status::Ok();
  }

  float LossAndGradient(const Dataset& data, std::span<const size_t> idx, const float* dense,
                        const SparseRows& rows, float* dense_grad,
                        float* sparse_grad) const override {
    const size_t sparse_size = rows.keys.size() * e_;
    Bags bags;
    std::vector<int32_t> y;
    if (rows.values.size() != sparse_size || !BuildBags(data, idx, rows, &bags) ||
        !GatherLabels(data, idx, c_, &y)) {
      return InvalidBatch(dense_grad, dense_size(), sparse_grad, sparse_size);
    }
    std::fill(sparse_grad, sparse_grad + sparse_size, 0.0f);
    const auto e = static_cast<Eigen::Index>(e_);
    auto [w, bias, dw, dbias] = LinearMaps(dense, dense_grad, out_, e_);
    if (idx.empty()) {
      dw.setZero();
      dbias.setZero();
      return 0.0f;
    }
    const float inv_b = 1.0f / static_cast<float>(idx.size());
    const Mat h = Pool(bags, rows);
    Mat z = w * h;
    z.colwise() += bias;
    double loss =
        (out_ == 1 ? SigmoidCrossEntropy(&z, y, inv_b) : SoftmaxCrossEntropy(&z, y, inv_b)) *
        inv_b;  // z is now dL/dz
    dw.noalias() = z * h.transpose();
    dbias = z.rowwise().sum();
    // dL/de[r] = sum over the batch's uses of r of weight * dL/dh.
    const Mat dh = w.transpose() * z;
    for (size_t b = 0; b < idx.size(); ++b) {
      const auto col = dh.col(static_cast<Eigen::Index>(b));
      for (size_t k = bags.offsets[b]; k < bags.offsets[b + 1]; ++k) {
        if (bags.row[k] < 0) continue;
        VecMap(sparse_grad + bags.row[k] * e, e) += bags.weight[k] * col;
      }
    }
    if (l2_ > 0) {
      loss += 0.5 * l2_ * w.squaredNorm();
      dw += l2_ * w;
      std::vector<char> used(rows.keys.size(), 0);
      for (int64_t r : bags.row) {
        if (r >= 0) used[static_cast<size_t>(r)] = 1;
      }
      for (size_t r = 0; r < used.size(); ++r) {
        if (!used[r]) continue;
        ConstVecMap row(rows.values.data() + r * e_, e);
        loss += 0.5 * l2_ * row.squaredNorm();
        VecMap(sparse_grad + r * e_, e) += l2_ * row;
      }
    }
    return static_cast<float>(loss);
  }

  std::vector<int32_t> Predict(const Dataset& data, std::span<const size_t> idx, const float* dense,
                               const SparseRows& rows) const override {
    const auto e = static_cast<Eigen::Index>(e_), out = static_cast<Eigen::Index>(out_);
    ConstRowMap w(dense, out, e);
    ConstVecMap bias(dense + out * e, out);
    std::vector<int32_t> result;
    result.reserve(idx.size());
    if (rows.values.size() != rows.keys.size() * e_) return std::vector<int32_t>(idx.size(), -1);
    for (size_t start = 0; start < idx.size(); start += kPredictChunk) {
      const auto chunk = idx.subspan(start, std::min(kPredictChunk, idx.size() - start));
      Bags bags;
      if (!BuildBags(data, chunk, rows, &bags)) return std::vector<int32_t>(idx.size(), -1);
      Mat z = w * Pool(bags, rows);
      z.colwise() += bias;
      ArgmaxColumns(z, &result);
    }
    return result;
  }

 private:
  // The batch's ids resolved to rows of SparseRows, flattened: example b owns
  // entries [offsets[b], offsets[b+1]); weight = v / n folds in the mean.
  struct Bags {
    std::vector<size_t> offsets;
    std::vector<int64_t> row;  // -1: key not in rows, counts as a zero row
    std::vector<float> weight;
  };

  bool BuildBags(const Dataset& data, std::span<const size_t> idx, const SparseRows& rows,
                 Bags* bags) const {
    if (data.ids.size() != data.size()) return false;
    const bool has_values = !data.values.empty();
    if (has_values && data.values.size() != data.size()) return false;
    const RowIndex index(rows.keys);
    bags->offsets.assign(1, 0);
    for (size_t i : idx) {
      if (i >= data.size()) return false;
      const auto& ids = data.ids[i];
      const std::vector<float>* values = has_values ? &data.values[i] : nullptr;
      if (values != nullptr && values->empty()) values = nullptr;
      if (values != nullptr && values->size() != ids.size()) return false;
      const float inv_n = ids.empty() ? 0.0f : 1.0f / static_cast<float>(ids.size());
      for (size_t j = 0; j < ids.size(); ++j) {
        bags->row.push_back(index.Find(ids[j]));
        bags->weight.push_back(values != nullptr ? (*values)[j] * inv_n : inv_n);
      }
      bags->offsets.push_back(bags->row.size());
    }
    return true;
  }

  // h (e x B): the weighted mean embedding of each example.
  Mat Pool(const Bags& bags, const SparseRows& rows) const {
    const auto e = static_cast<Eigen::Index>(e_);
    const size_t batch = bags.offsets.size() - 1;
    Mat h = Mat::Zero(e, static_cast<Eigen::Index>(batch));
    for (size_t b = 0; b < batch; ++b) {
      auto col = h.col(static_cast<Eigen::Index>(b));
      for (size_t k = bags.offsets[b]; k < bags.offsets[b + 1]; ++k) {
        if (bags.row[k] < 0) continue;
        col += bags.weight[k] * ConstVecMap(rows.values.data() + bags.row[k] * e, e);
      }
    }
    return h;
  }

  const size_t e_, c_, out_;
  const float l2_;
};

}  // namespace

std::unique_ptr<Model> NewEmbeddingBagModel(size_t dim, size_t num_classes, float l2) {
  return std::make_unique<EmbeddingBagModel>(dim, num_classes, l2);
}

}  // namespace phalanx::worker::internal
