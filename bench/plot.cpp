#include "plot.hpp"

#include "clock.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace shmbus::bench {

namespace {

std::string gnuplot_path() {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  std::size_t i = 0;
  while (i <= p.size()) {
    const std::size_t j = std::min(p.find(':', i), p.size());
    const std::string cand = (j > i ? p.substr(i, j - i) : std::string(".")) + "/gnuplot";
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    i = j + 1;
  }
  return {};
}

std::string quoted(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += (c == '\'') ? std::string("''") : std::string(1, c);
  return o + "'";
}

void prepare(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("--plot: cannot create " + dir + ": " + ec.message());
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) throw std::runtime_error("--plot: cannot write " + path);
}

/// Runs `gnuplot NAME.gp` in DIR; its output goes to DIR/NAME.log. Adds the images on success.
void render(const std::string& dir, const std::string& name, std::vector<std::string>& files) {
  const std::string gp = gnuplot_path();
  if (gp.empty()) return;
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return;
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    const int fd = ::open((name + ".log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    ::execl(gp.c_str(), gp.c_str(), (name + ".gp").c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    files.push_back(dir + "/" + name + ".png");
    files.push_back(dir + "/" + name + ".svg");
  } else {
    std::fprintf(stderr, "shmbus-bench: gnuplot failed on %s/%s.gp (see %s/%s.log)\n", dir.c_str(), name.c_str(),
                 dir.c_str(), name.c_str());
  }
}

std::string header(const std::string& name, const std::string& title) {
  return "# rendered by shmbus-bench; by hand: gnuplot " + name + ".gp\n"
         "set terminal pngcairo noenhanced size 1100,650 font ',10'\n"
         "set output " + quoted(name + ".png") + "\n"
         "set title " + quoted(title) + "\n"
         "set grid xtics ytics mxtics mytics lc rgb '#dddddd'\n";
}

std::string footer(const std::string& name) {
  return "set terminal svg noenhanced size 1100,650 dynamic font 'sans,10'\n"
         "set output " + quoted(name + ".svg") + "\nreplot\n";
}

}  // namespace

std::vector<std::string> write_latency_plot(const std::string& dir, const std::string& name, const std::string& title,
                                            const std::vector<CurveSeries>& series) {
  prepare(dir);
  const double npt = clock_info().ns_per_tick;
  std::string dat = "# x = 1/(1-percentile)   percentile(%)   latency_ns; one block per series\n";
  char row[128];
  for (const auto& s : series) {
    dat += "# " + s.label + "\n";
    const std::size_t n = s.sorted_ticks.size();
    if (n == 0) dat += "1 0 0\n";
    for (int j = 0; n > 0; ++j) {
      const double q = 1.0 - std::pow(10.0, -j / 40.0);
      const double x = 1.0 / (1.0 - q);
      if (x > static_cast<double>(n)) {
        std::snprintf(row, sizeof row, "%.6g %.6f %.1f\n", static_cast<double>(n), 100.0,
                      static_cast<double>(s.sorted_ticks[n - 1]) * npt * s.scale);
        dat += row;
        break;
      }
      auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
      rank = std::clamp<std::size_t>(rank, 1, n);
      std::snprintf(row, sizeof row, "%.6g %.6f %.1f\n", x, q * 100.0,
                    static_cast<double>(s.sorted_ticks[rank - 1]) * npt * s.scale);
      dat += row;
    }
    dat += "\n\n";
  }
  write_file(dir + "/" + name + ".dat", dat);
  std::string gp = header(name, title) +
                   "set logscale x\nset logscale y\nset key left top\n"
                   "set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000, "
                   "'99.9999%%' 1000000)\n"
                   "set xlabel 'percentile (log scale of 1/(1-p))'\nset ylabel 'one-way latency, ns (log)'\nplot ";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    const int lc = s.color > 0 ? s.color : static_cast<int>(i) + 1;
    gp += (i ? ", \\\n     " : "") + quoted(name + ".dat") + " index " + std::to_string(i) +
          " using 1:3 with lines lw 2 lc " + std::to_string(lc) + (s.dashed ? " dt 2" : " dt 1") + " title " +
          quoted(s.label);
  }
  gp += "\n" + footer(name);
  write_file(dir + "/" + name + ".gp", gp);
  std::vector<std::string> files{dir + "/" + name + ".dat", dir + "/" + name + ".gp"};
  render(dir, name, files);
  return files;
}

std::vector<std::string> write_xy_plot(const std::string& dir, const std::string& name, const std::string& title,
                                       const std::string& xlabel, const std::string& ylabel,
                                       const std::vector<XySeries>& series, const std::string& key) {
  prepare(dir);
  std::string dat = "# x  y; one block per series\n";
  char row[96];
  for (const auto& s : series) {
    dat += "# " + s.label + "\n";
    for (const auto& [x, y] : s.points) {
      std::snprintf(row, sizeof row, "%.6g %.6g\n", x, y);
      dat += row;
    }
    if (s.points.empty()) dat += "1 1\n";
    dat += "\n\n";
  }
  write_file(dir + "/" + name + ".dat", dat);
  std::string gp = header(name, title) + "set logscale x 2\nset logscale y\nset key " + key +
                   " box opaque\nset offsets graph 0.03, graph 0.03, 0, 0\nset xlabel " +
                   quoted(xlabel) + "\nset ylabel " + quoted(ylabel) + "\nset format x '%.0f'\nplot ";
  for (std::size_t i = 0; i < series.size(); ++i)
    gp += (i ? ", \\\n     " : "") + quoted(name + ".dat") + " index " + std::to_string(i) +
          " using 1:2 with linespoints lw 2 pt 7 title " + quoted(series[i].label);
  gp += "\n" + footer(name);
  write_file(dir + "/" + name + ".gp", gp);
  std::vector<std::string> files{dir + "/" + name + ".dat", dir + "/" + name + ".gp"};
  render(dir, name, files);
  return files;
}

void announce_plots(const std::vector<std::string>& files, const std::string& dir) {
  bool images = false;
  for (const auto& f : files) {
    std::fprintf(stderr, "plot: %s\n", f.c_str());
    images |= f.ends_with(".png");
  }
  if (!images && gnuplot_path().empty())
    std::fprintf(stderr, "plot: gnuplot not found on PATH: render with `cd %s && for f in *.gp; do gnuplot \"$f\"; done` "
                 "(Debian: apt-get install gnuplot-nox)\n", dir.c_str());
}

}  // namespace shmbus::bench
