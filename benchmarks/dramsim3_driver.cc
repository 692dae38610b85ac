// Saturating trace driver for DRAMsim3 (benchmarks/dram_vs_dramsim3.py builds and runs it).
//
// DRAMsim3's own trace front end hands over at most one request per cycle (a quarter of HBM2's
// peak) and never drains the last <= 8 buffered writes. This driver builds one DRAMsim3 Controller
// per channel and, every cycle, hands each channel its next requests in order for as long as the
// controller accepts them; when a channel has no requests left and only writes remain buffered it
// starts the drain that DRAMsim3 starts itself once more than 8 writes wait. It stops when every
// request's data has moved: the last RD issue + read_delay, the last WR issue + write_delay.
//
// Usage: dramsim3_driver CONFIG.ini STREAM.bin  (STREAM: int64 pairs (burst index, is_write))
// Prints one JSON line: cycles, commands, row hits, energy components (pJ), loop wall and CPU seconds.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>
// read the controller's queues and statistics (no accessor exists for them)
#define private public
#include "configuration.h"
#include "controller.h"
#include "timing.h"
#undef private

using namespace dramsim3;

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: dramsim3_driver CONFIG.ini STREAM.bin" << std::endl;
        return 2;
    }
    Config config(argv[1], "/tmp");
    Timing timing(config);
    std::ifstream in2(argv[2], std::ios::binary | std::ios::ate);
    size_t bytes = in2.tellg();
    in2.seekg(0);
    std::vector<int64_t> words(bytes / 8);
    in2.read(reinterpret_cast<char*>(words.data()), bytes);
    const int C = config.channels;
    std::vector<std::deque<std::pair<uint64_t, bool>>> fifo(C);
    const uint64_t burst = config.request_size_bytes;
    for (size_t i = 0; i + 1 < words.size(); i += 2) {
        uint64_t addr = static_cast<uint64_t>(words[i]) * burst;
        fifo[config.AddressMapping(addr).channel].emplace_back(addr, words[i + 1] != 0);
    }
    std::vector<Controller*> ctrl;
    for (int c = 0; c < C; c++) ctrl.push_back(new Controller(c, config, timing));
    std::vector<int64_t> last_rd(C, -1), last_wr(C, -1);
    uint64_t clk = 0;
    auto t0 = std::chrono::steady_clock::now();
    std::clock_t c0 = std::clock();
    while (true) {
        bool all_done = true;
        for (int c = 0; c < C; c++) {
            Controller& k = *ctrl[c];
            auto& f = fifo[c];
            while (!f.empty() && k.WillAcceptTransaction(f.front().first, f.front().second)) {
                k.AddTransaction(Transaction(f.front().first, f.front().second));
                f.pop_front();
            }
            if (f.empty() && k.read_queue_.empty() && k.write_draining_ == 0 && !k.write_buffer_.empty() &&
                k.cmd_queue_.QueueEmpty()) {
                k.write_draining_ = k.write_buffer_.size();
            }
            size_t rd = k.pending_rd_q_.size(), wr = k.pending_wr_q_.size();
            k.ClockTick();
            if (k.pending_rd_q_.size() < rd) last_rd[c] = clk;
            if (k.pending_wr_q_.size() < wr) last_wr[c] = clk;
            while (k.ReturnDoneTrans(clk + 1).second >= 0) {
            }
            if (!f.empty() || !k.read_queue_.empty() || !k.write_buffer_.empty() || !k.pending_rd_q_.empty() ||
                !k.pending_wr_q_.empty() || !k.cmd_queue_.QueueEmpty())
                all_done = false;
        }
        clk++;
        if (all_done) break;
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    int64_t end = 0;
    for (int c = 0; c < C; c++) {
        if (last_rd[c] >= 0) end = std::max(end, last_rd[c] + config.read_delay);
        if (last_wr[c] >= 0) end = std::max(end, last_wr[c] + config.write_delay);
    }
    std::map<std::string, double> n;
    const char* names[] = {"num_read_cmds", "num_write_cmds", "num_read_row_hits", "num_write_row_hits",
                           "num_act_cmds", "num_pre_cmds", "num_ref_cmds", "num_refb_cmds"};
    double background = 0;
    for (int c = 0; c < C; c++) {
        auto& s = ctrl[c]->simple_stats_;
        for (auto nm : names) n[nm] += s.epoch_counters_[nm] + s.counters_[nm];
        for (int r = 0; r < config.ranks; r++) {
            background += (s.epoch_vec_counters_["rank_active_cycles"][r] + s.vec_counters_["rank_active_cycles"][r]) *
                              config.act_stb_energy_inc +
                          (s.epoch_vec_counters_["all_bank_idle_cycles"][r] +
                           s.vec_counters_["all_bank_idle_cycles"][r]) *
                              config.pre_stb_energy_inc;
        }
    }
    // DRAMsim3's energy increments are V * mA * cycles; x tCK (ns) gives pJ
    const double tck = config.tCK;
    printf("{\"cycles\": %lld, \"ticked\": %llu, \"tck_ns\": %g, \"ranks\": %d, \"wall_s\": %.6f, \"cpu_s\": %.6f, ",
           (long long)end, (unsigned long long)clk, tck, config.ranks, wall, cpu);
    for (auto& kv : n) printf("\"%s\": %.0f, ", kv.first.c_str(), kv.second);
    printf("\"energy_pj\": {\"act\": %.6g, \"read\": %.6g, \"write\": %.6g, \"refresh\": %.6g, \"background\": %.6g}}\n",
           n["num_act_cmds"] * config.act_energy_inc * tck, n["num_read_cmds"] * config.read_energy_inc * tck,
           n["num_write_cmds"] * config.write_energy_inc * tck,
           (n["num_ref_cmds"] * config.ref_energy_inc + n["num_refb_cmds"] * config.refb_energy_inc) * tck,
           background * tck);
    for (auto* k : ctrl) delete k;
    return 0;
}
