#pragma once
// Building blocks shared by the rules: input checks, stable selection,
// distance matrices (direct and from a Gram matrix), Krum scores, NNM mixing,
// the MDA subset search, coordinate-wise kernels. Pure functions, thread-safe.

#include <Eigen/Dense>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::aggregators::internal {

// InvalidArgument unless inputs has at least one row and min_cols columns and
// every value is finite (naming the first offending worker).
Status CheckInputs(const Eigen::MatrixXd& inputs, int min_cols, const std::string& rule);
// InvalidArgument unless gram is square, at least n x n and finite.
Status CheckGram(const Eigen::MatrixXd& gram, int n, int k, const std::string& rule);

// Indices of the k smallest keys, ordered by (key, index): the project-wide
// tie-breaking rule (docs/aggregation-rules.md, "Notation and conventions").
std::vector<int> StableSmallest(const Eigen::VectorXd& keys, int k);

// Squared Euclidean distances between the columns of x, computed once per
// unordered pair over coordinate blocks, so the result is exactly symmetric
// with a zero diagonal.
Eigen::MatrixXd PairwiseSquaredDistances(const Eigen::MatrixXd& x);
// The same from the Gram matrix of the first n columns: K_ii + K_jj - 2 K_ij,
// clamped at 0, exactly symmetric, zero diagonal.
Eigen::MatrixXd SquaredDistancesFromGram(const Eigen::MatrixXd& gram, int n);

// ByzFL Krum scores of the candidates `rows` (indices into d2): for each row,
// the mean of its `neighbours` smallest squared distances to the other
// candidates (the self distance is dropped as the first sorted entry).
Eigen::VectorXd KrumScores(const Eigen::MatrixXd& d2, const std::vector<int>& rows, int neighbours);

// NNM mixing matrix (n x n): column i averages the n - f columns nearest to
// column i (including i), ties by (distance, index). neighbours, if not null,
// receives each column's selected indices in ascending order.
Eigen::MatrixXd NnmMixing(const Eigen::MatrixXd& d2, int f,
                          std::vector<std::vector<int>>* neighbours);

// MDA: the lexicographically first subset of size k with minimal diameter
// (max pairwise distance), by branch and bound over combinations in
// lexicographic order with a strict-< acceptance. dist holds plain
// (non-squared) distances.
std::vector<int> MinDiameterSubset(const Eigen::MatrixXd& dist, int k);

// Bulyan's selection: theta rounds of ByzFL Krum(f) on the remaining
// candidates (kept in ascending order), returning the selection order.
std::vector<int> BulyanSelection(const Eigen::MatrixXd& d2, int f, int theta);

// Coordinate-wise kernels on x (d x n), parallel over coordinates.
// median: mean of the two middle values for even n.
Eigen::VectorXd CoordinateMedian(const Eigen::MatrixXd& x);
// trimmed mean: drop the f smallest and f largest, average the rest (2f < n).
Eigen::VectorXd CoordinateTrimmedMean(const Eigen::MatrixXd& x, int f);
// meamed: average the n - f values closest to the median, ties by
// (|x - median|, index) (f < n).
Eigen::VectorXd CoordinateMeamed(const Eigen::MatrixXd& x, int f);
// Dispatch by name: "mean", "median", "trimmed-mean", "meamed".
Result<Eigen::VectorXd> ApplyCoordinatewise(const std::string& rule, int f,
                                            const Eigen::MatrixXd& x);

// x * c computed over row blocks in parallel (d can be 1e7).
Eigen::VectorXd MixColumns(const Eigen::MatrixXd& x, const Eigen::VectorXd& c);

}  // namespace phalanx::aggregators::internal
