#pragma once
// Pre-aggregators: maps from n input vectors to n vectors, applied before a
// rule (ByzFL's pre_agg_list). Pure functions, thread-safe.

#include <Eigen/Dense>
#include <vector>

#include "common/status.h"

namespace phalanx::aggregators {

// Nearest-neighbour mixing (ByzFL NNM(f), Allouah et al. 2023): column i of
// the result is the mean of the n - f columns of inputs (d x n) nearest to
// column i, itself included, ties by (distance, index). Needs f < n.
// neighbours, if not null, receives each column's selected indices
// (ascending).
Result<Eigen::MatrixXd> NearestNeighborMixing(const Eigen::MatrixXd& inputs, int f,
                                              std::vector<std::vector<int>>* neighbours = nullptr);

// Static clipping (ByzFL Clipping(c)): each column scaled to norm at most c.
Result<Eigen::MatrixXd> StaticClipping(const Eigen::MatrixXd& inputs, double c);

}  // namespace phalanx::aggregators
