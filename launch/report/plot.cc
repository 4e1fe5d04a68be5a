#include "launch/report/plot.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace phalanx {
namespace {

// A temporary file removed on scope exit; the fd stays open until then.
class TempFile {
 public:
  TempFile() = default;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  Status Create(const std::string& suffix) {
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
    if (ec) dir = "/tmp";
    std::string tmpl = (dir / ("phx_plot_XXXXXX" + suffix)).string();
    fd_ = ::mkstemps(tmpl.data(), static_cast<int>(suffix.size()));
    if (fd_ < 0) {
      return Internal(
          fmt::format("cannot create temporary file {}: {}", tmpl, std::strerror(errno)));
    }
    path_ = tmpl;
    return Status::Ok();
  }

  Status Write(const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Internal(fmt::format("cannot write {}: {}", path_, std::strerror(errno)));
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  std::string ReadAll() const {
    std::ifstream in(path_, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Single-quoted gnuplot string: only '' is special inside; line breaks would
// end the command, so they become spaces.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "''";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string Trim(std::string s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && blank(s.back())) s.pop_back();
  size_t i = 0;
  while (i < s.size() && blank(s[i])) ++i;
  s.erase(0, i);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

// The column names from the CSV's header row.
Result<std::vector<std::string>> ReadCsvHeader(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(fmt::format("cannot open CSV {}: {}", path, std::strerror(errno)));
  std::string line;
  if (!std::getline(in, line)) return InvalidArgument(fmt::format("CSV {} is empty", path));
  if (line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM from spreadsheets
  std::vector<std::string> columns;
  std::stringstream fields(line);
  std::string field;
  while (std::getline(fields, field, ',')) columns.push_back(Trim(field));
  if (columns.empty()) return InvalidArgument(fmt::format("CSV {} has an empty header", path));
  return columns;
}

// 1-based column index, as gnuplot's `using` wants it.
Result<int> ColumnIndex(const std::vector<std::string>& header, const std::string& column,
                        const std::string& path) {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == column) return static_cast<int>(i) + 1;
  }
  std::string names;
  for (const auto& h : header) names += (names.empty() ? "" : ", ") + h;
  return InvalidArgument(
      fmt::format("CSV {} has no column '{}' (columns: {})", path, column, names));
}

// Prefers the anti-aliased cairo terminal and falls back to libgd's png,
// which is all some gnuplot-nox builds have.
std::string TerminalPreamble(int width, int height, const std::string& output_path) {
  return fmt::format(
      "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {{ set terminal pngcairo noenhanced size "
      "{0},{1} }} else {{ set terminal png noenhanced size {0},{1} }}\n"
      "set output {2}\n",
      width, height, Quote(output_path));
}

std::string TailOf(std::string text, size_t max_chars) {
  text = Trim(std::move(text));
  if (text.size() > max_chars) text = "..." + text.substr(text.size() - max_chars);
  return text.empty() ? "(no output)" : text;
}

// Runs `gnuplot script` with a deadline and checks that it produced a
// non-empty output file.
Status RunGnuplot(const std::string& script, const std::string& gnuplot, int timeout_seconds,
                  const std::string& output_path) {
  TempFile script_file;
  PHX_RETURN_IF_ERROR(script_file.Create(".gp"));
  PHX_RETURN_IF_ERROR(script_file.Write(script));
  TempFile log_file;
  PHX_RETURN_IF_ERROR(log_file.Create(".log"));

  // Remove a stale plot so that success below means gnuplot wrote it now.
  std::error_code ec;
  std::filesystem::remove(output_path, ec);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, log_file.fd(), 1);
  posix_spawn_file_actions_adddup2(&actions, log_file.fd(), 2);
  std::string arg0 = gnuplot;
  std::string arg1 = script_file.path();
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, gnuplot.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc == ENOENT || rc == EACCES) {
    return FailedPrecondition(fmt::format(
        "gnuplot not found ('{}': {}); install it with scripts/setup.sh (Debian package "
        "gnuplot-nox)",
        gnuplot, std::strerror(rc)));
  }
  if (rc != 0) return Internal(fmt::format("cannot start {}: {}", gnuplot, std::strerror(rc)));

  // Poll instead of a blocking waitpid so that a wedged gnuplot cannot hang
  // the caller past its deadline.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  int wstatus = 0;
  for (;;) {
    pid_t done = ::waitpid(pid, &wstatus, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) {
      return Internal(fmt::format("waiting for gnuplot: {}", std::strerror(errno)));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
      }
      return DeadlineExceeded(fmt::format("gnuplot did not finish within {} s drawing {}",
                                          timeout_seconds, output_path));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    std::string how = WIFEXITED(wstatus) ? fmt::format("exit status {}", WEXITSTATUS(wstatus))
                                         : fmt::format("signal {}", WTERMSIG(wstatus));
    return Internal(fmt::format("gnuplot failed drawing {} ({}): {}", output_path, how,
                                TailOf(log_file.ReadAll(), 2000)));
  }
  auto size = std::filesystem::file_size(output_path, ec);
  if (ec || size == 0) {
    return Internal(fmt::format("gnuplot wrote no image to {}: {}", output_path,
                                TailOf(log_file.ReadAll(), 2000)));
  }
  return Status::Ok();
}

Status CheckCommon(const std::string& output_path, int width, int height, int timeout_seconds) {
  if (output_path.empty()) return InvalidArgument("plot needs an output path");
  if (width <= 0 || height <= 0 || width > 20000 || height > 20000) {
    return InvalidArgument(fmt::format("plot size {}x{} out of range", width, height));
  }
  if (timeout_seconds <= 0) return InvalidArgument("plot timeout must be positive");
  return Status::Ok();
}

}  // namespace

Status PlotLines(const PlotSpec& spec) {
  PHX_RETURN_IF_ERROR(CheckCommon(spec.output_path, spec.width, spec.height, spec.timeout_seconds));
  if (spec.x_column.empty()) return InvalidArgument("plot needs an x column");
  if (spec.series.empty()) return InvalidArgument("plot needs at least one series");

  std::map<std::string, std::vector<std::string>> headers;  // by CSV path
  std::vector<std::string> curves;
  bool uses_right_axis = false;
  for (const PlotSeries& s : spec.series) {
    const std::string& csv = s.csv_path.empty() ? spec.csv_path : s.csv_path;
    if (csv.empty()) {
      return InvalidArgument(fmt::format("series '{}' has no CSV file", s.column));
    }
    if (s.column.empty())
      return InvalidArgument(fmt::format("a series of {} names no column", csv));
    auto it = headers.find(csv);
    if (it == headers.end()) {
      PHX_ASSIGN_OR_RETURN(std::vector<std::string> header, ReadCsvHeader(csv));
      it = headers.emplace(csv, std::move(header)).first;
    }
    PHX_ASSIGN_OR_RETURN(int x, ColumnIndex(it->second, spec.x_column, csv));
    PHX_ASSIGN_OR_RETURN(int y, ColumnIndex(it->second, s.column, csv));
    bool right = s.axis == PlotAxis::kRight;
    uses_right_axis |= right;
    curves.push_back(fmt::format("{} skip 1 using {}:{} axes x1{} with linespoints title {}",
                                 Quote(csv), x, y, right ? "y2" : "y1",
                                 Quote(s.label.empty() ? s.column : s.label)));
  }

  std::string script = TerminalPreamble(spec.width, spec.height, spec.output_path);
  script += "set datafile separator ','\n";
  script += "set grid\nset key below\n";
  script += "set title " + Quote(spec.title) + "\n";
  script += "set xlabel " + Quote(spec.x_label.empty() ? spec.x_column : spec.x_label) + "\n";
  script += "set ylabel " + Quote(spec.y_label) + "\n";
  if (uses_right_axis) {
    script += "set ytics nomirror\nset y2tics\n";
    script += "set y2label " + Quote(spec.y2_label) + "\n";
  }
  if (spec.log_y) script += "set logscale y\n";
  if (spec.log_y2 && uses_right_axis) script += "set logscale y2\n";
  script += "plot ";
  for (size_t i = 0; i < curves.size(); ++i) {
    script += (i == 0 ? "" : ", \\\n     ") + curves[i];
  }
  script += "\n";
  return RunGnuplot(script, spec.gnuplot, spec.timeout_seconds, spec.output_path);
}

Status PlotHeatmap(const HeatmapSpec& spec) {
  PHX_RETURN_IF_ERROR(CheckCommon(spec.output_path, spec.width, spec.height, spec.timeout_seconds));
  size_t rows = spec.row_labels.size();
  size_t cols = spec.col_labels.size();
  if (rows == 0 || cols == 0) return InvalidArgument("heatmap needs row and column labels");
  if (spec.values.size() != rows) {
    return InvalidArgument(
        fmt::format("heatmap has {} rows of values but {} row labels", spec.values.size(), rows));
  }
  for (size_t r = 0; r < rows; ++r) {
    if (spec.values[r].size() != cols) {
      return InvalidArgument(fmt::format("heatmap row {} has {} values but {} column labels", r,
                                         spec.values[r].size(), cols));
    }
  }

  std::string script = TerminalPreamble(spec.width, spec.height, spec.output_path);
  // Inline data block: no CSV to parse, and exact values (%.17g).
  script += "$cells << EOD\n";
  for (const auto& row : spec.values) {
    for (size_t c = 0; c < cols; ++c) {
      script += c == 0 ? "" : " ";
      script += std::isfinite(row[c]) ? fmt::format("{:.17g}", row[c]) : "NaN";
    }
    script += "\n";
  }
  script += "EOD\n";
  script += "set title " + Quote(spec.title) + "\n";
  script += "set xlabel " + Quote(spec.x_label) + "\n";
  script += "set ylabel " + Quote(spec.y_label) + "\n";
  script += "set cblabel " + Quote(spec.colorbar_label) + "\n";
  // Row 0 on top, as the matrix is written.
  script += fmt::format("set xrange [-0.5:{}]\nset yrange [{}:-0.5]\n", cols - 0.5, rows - 0.5);
  auto tics = [](const std::vector<std::string>& labels) {
    std::string out = "(";
    for (size_t i = 0; i < labels.size(); ++i) {
      out += fmt::format("{}{} {}", i == 0 ? "" : ", ", Quote(labels[i]), i);
    }
    return out + ")";
  };
  script += "set xtics " + tics(spec.col_labels) + " rotate by -30 left\n";
  script += "set ytics " + tics(spec.row_labels) + "\n";
  script += "set tics scale 0\nunset key\n";
  // Light-to-mid palette so black annotations stay readable on every cell.
  script += "set palette defined (0 '#ffffe5', 0.5 '#fe9929', 1 '#cc4c02')\n";
  // Boxes rather than `with image`, which needs at least a 2x2 grid.
  script +=
      "plot $cells matrix using 1:2:(0.5):(0.5):3 with boxxyerror fillcolor palette "
      "fillstyle solid 1.0 noborder";
  if (spec.annotate) {
    script +=
        ", \\\n     $cells matrix using 1:2:(($3 == $3) ? sprintf('%.3g', $3) : '') "
        "with labels textcolor 'black'";
  }
  script += "\n";
  return RunGnuplot(script, spec.gnuplot, spec.timeout_seconds, spec.output_path);
}

}  // namespace phalanx
