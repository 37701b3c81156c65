// gnuplot output for --plot DIR: data files (.dat) and scripts (.gp) always; PNG and SVG when
// `gnuplot` is on PATH (render by hand with `cd DIR && gnuplot NAME.gp`).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace shmbus::bench {

/// One latency percentile curve: samples in ticks, sorted ascending, times `scale` (0.5 for RTT/2).
struct CurveSeries {
  std::string label;
  std::span<const std::uint64_t> sorted_ticks;
  double scale = 1.0;
  int color = 0;        ///< 0: gnuplot's default sequence; else a line-type index shared by series
  bool dashed = false;
};

/// Latency vs percentile on a log "nines" axis (x = 1/(1-p): 50%, 90%, 99%, ... as HdrHistogram
/// plots), y = latency ns (log). Writes DIR/NAME.dat, DIR/NAME.gp, and renders DIR/NAME.png/.svg.
/// Returns the files written (for the report).
std::vector<std::string> write_latency_plot(const std::string& dir, const std::string& name, const std::string& title,
                                            const std::vector<CurveSeries>& series);

/// y vs x (log-log) series, e.g. throughput vs message size.
struct XySeries {
  std::string label;
  std::vector<std::pair<double, double>> points;
};
std::vector<std::string> write_xy_plot(const std::string& dir, const std::string& name, const std::string& title,
                                       const std::string& xlabel, const std::string& ylabel,
                                       const std::vector<XySeries>& series, const std::string& key = "right top");

/// Prints on stderr what was written (or how to render it when gnuplot is missing).
void announce_plots(const std::vector<std::string>& files, const std::string& dir);

}  // namespace shmbus::bench
