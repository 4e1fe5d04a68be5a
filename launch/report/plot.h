#pragma once
// PNG line plots and heatmaps for experiment reports, drawn by the system's
// gnuplot (Debian package gnuplot-nox; scripts/setup.sh installs it).
//
// Each call writes a gnuplot script to a temporary file, runs gnuplot on it
// as a child process with a deadline, and returns its stderr in the error
// message when it fails. CSV files are checked before plotting so that a
// missing column is reported by name (InvalidArgument) rather than as an
// empty plot. Text (titles, labels) is drawn literally: gnuplot's "enhanced"
// markup is off, so "train_loss" keeps its underscore.
//
// Thread-safety: the functions are stateless and may be called concurrently
// (each uses its own temporary files); they block until gnuplot exits.

#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx {

enum class PlotAxis { kLeft, kRight };

// One curve: column `column` of a CSV file against the spec's x column.
struct PlotSeries {
  std::string column;
  // Legend entry; defaults to the column name.
  std::string label;
  PlotAxis axis = PlotAxis::kLeft;
  // CSV file holding this curve; empty means PlotSpec::csv_path. Setting it
  // per series plots several files as separate curves (e.g. accuracy vs
  // round, one CSV per aggregation rule); each file needs the x column too.
  std::string csv_path;
};

struct PlotSpec {
  // Comma-separated file with a header row naming the columns; cells that are
  // empty or not numbers are skipped as missing points.
  std::string csv_path;
  std::string output_path;  // PNG to write (overwritten)
  std::string title;
  std::string x_column;
  std::vector<PlotSeries> series;  // at least one
  std::string x_label;             // defaults to x_column
  std::string y_label;             // left axis
  std::string y2_label;            // right axis, used when a series is on it
  bool log_y = false;              // log scale on the left axis
  bool log_y2 = false;             // log scale on the right axis
  int width = 900;                 // pixels
  int height = 540;
  std::string gnuplot = "gnuplot";  // executable, looked up on PATH
  int timeout_seconds = 60;         // gnuplot is killed after this
};

// Draws the series as lines with points. InvalidArgument for an incomplete
// spec or a CSV lacking a named column, NotFound for a missing CSV,
// FailedPrecondition when gnuplot is not installed, Internal when gnuplot
// fails (its stderr attached), DeadlineExceeded on timeout.
Status PlotLines(const PlotSpec& spec);

struct HeatmapSpec {
  std::string output_path;  // PNG to write (overwritten)
  std::string title;
  std::vector<std::string> row_labels;  // top to bottom
  std::vector<std::string> col_labels;  // left to right
  // values[r][c]; rows x cols matching the labels. NaN cells are left blank.
  std::vector<std::vector<double>> values;
  std::string x_label;
  std::string y_label;
  std::string colorbar_label;
  bool annotate = true;  // print each value in its cell
  int width = 900;
  int height = 700;
  std::string gnuplot = "gnuplot";
  int timeout_seconds = 60;
};

// Draws a matrix as coloured cells with row/column labels. Errors as for
// PlotLines; InvalidArgument when the shape does not match the labels.
Status PlotHeatmap(const HeatmapSpec& spec);

}  // namespace phalanx
