/**
 * Data-sheet hardware profiles (REFERENCE.md §3) used by the roofline
 * estimator when no calibration file covers a component. Everything derived
 * from these numbers is an ESTIMATE: measured or imported calibration wins.
 *
 * peakFlops: dense FP16 tensor throughput of the GPU alone (no DLA / CPU).
 * memBandwidthBps: DRAM bandwidth in bytes/s (1 GB/s = 1e9 B/s).
 * computeEfficiency / memoryEfficiency / overheadMsPerCall are ASSUMPTIONS
 * (documented per entry below), to be replaced by calibration when available.
 */
import { InputError } from '../core/errors.js';

export interface HardwareProfile {
  id: string;
  name: string;
  /** Dense FP16 tensor peak, FLOP/s. */
  peakFlops: number;
  /** Peak memory bandwidth, bytes/s. */
  memBandwidthBps: number;
  /** Memory capacity, bytes (shared CPU+GPU on Jetson). */
  memoryBytes: number;
  /** Fraction of peakFlops reached by large fp16 GEMMs [assumption]. */
  computeEfficiency: number;
  /** Fraction of memBandwidthBps reached by weight streaming [assumption]. */
  memoryEfficiency: number;
  /** Fixed overhead per component call (kernel launches, sync), ms [assumption]. */
  overheadMsPerCall: number;
  source: 'data sheet';
  notes: string;
}

const GB = 1e9;
const GIB = 1024 ** 3;
const TFLOPS = 1e12;

export const HARDWARE: Record<string, HardwareProfile> = {
  'jetson-agx-orin-64gb': {
    id: 'jetson-agx-orin-64gb',
    name: 'NVIDIA Jetson AGX Orin 64GB',
    peakFlops: 42 * TFLOPS, // 2048 CUDA cores, 64 tensor cores, 1.3 GHz
    memBandwidthBps: 204.8 * GB, // LPDDR5, shared with the CPU
    memoryBytes: 64 * GIB,
    // Assumption: LPDDR5 shared with CPU, ~60 % of peak sustained for weight reads;
    // small GPU + immature kernels reach ~40 % of tensor peak on GEMMs.
    computeEfficiency: 0.4,
    memoryEfficiency: 0.6,
    // Assumption: ~10 kernel launches per layer at ~10 us each on an ARM host.
    overheadMsPerCall: 0.1,
    source: 'data sheet',
    notes: 'data sheet; efficiencies and overhead are assumptions',
  },
  'jetson-agx-orin-32gb': {
    id: 'jetson-agx-orin-32gb',
    name: 'NVIDIA Jetson AGX Orin 32GB',
    peakFlops: 27 * TFLOPS, // 1792 CUDA cores, 56 tensor cores, 0.93 GHz
    memBandwidthBps: 204.8 * GB,
    memoryBytes: 32 * GIB,
    // Assumption: same as the 64GB module (same memory system, smaller GPU).
    computeEfficiency: 0.4,
    memoryEfficiency: 0.6,
    overheadMsPerCall: 0.12, // Assumption: slightly slower clocks than the 64GB module.
    source: 'data sheet',
    notes: 'data sheet; efficiencies and overhead are assumptions',
  },
  'jetson-orin-nx-16gb': {
    id: 'jetson-orin-nx-16gb',
    name: 'NVIDIA Jetson Orin NX 16GB',
    peakFlops: 15 * TFLOPS, // 1024 CUDA cores, 32 tensor cores, 0.92 GHz
    memBandwidthBps: 102.4 * GB,
    memoryBytes: 16 * GIB,
    // Assumption: as AGX Orin (LPDDR5 shared memory, ~60 %; GEMMs ~40 %).
    computeEfficiency: 0.4,
    memoryEfficiency: 0.6,
    overheadMsPerCall: 0.15, // Assumption: weaker CPU (8-core A78AE at lower clocks) launching kernels.
    source: 'data sheet',
    notes: 'data sheet; efficiencies and overhead are assumptions',
  },
  'jetson-xavier-nx': {
    id: 'jetson-xavier-nx',
    name: 'NVIDIA Jetson Xavier NX',
    peakFlops: 6.8 * TFLOPS, // 384 CUDA cores, 48 tensor cores
    memBandwidthBps: 59.7 * GB, // LPDDR4x
    memoryBytes: 16 * GIB, // 8 GB and 16 GB variants exist; the larger is assumed
    // Assumption: older Volta-class tensor cores and LPDDR4x: ~35 % compute, ~60 % memory.
    computeEfficiency: 0.35,
    memoryEfficiency: 0.6,
    overheadMsPerCall: 0.2, // Assumption: Carmel CPU, slowest launch path of the list.
    source: 'data sheet',
    notes: 'data sheet; efficiencies and overhead are assumptions; 16 GB variant assumed',
  },
  'jetson-tx2': {
    id: 'jetson-tx2',
    name: 'NVIDIA Jetson TX2',
    peakFlops: 1.3 * TFLOPS, // 256 Pascal CUDA cores, FP16 at 2x FP32, no tensor cores
    memBandwidthBps: 59.7 * GB, // 128-bit LPDDR4, shared with the CPU
    memoryBytes: 8 * GIB, // 8 GB shared CPU+GPU
    // Assumption: no tensor cores, plain FP16 CUDA GEMMs reach ~45 % of the
    // FP16 peak; LPDDR4 shared with the CPU ~60 % of peak for streaming reads.
    computeEfficiency: 0.45,
    memoryEfficiency: 0.6,
    overheadMsPerCall: 0.3, // Assumption: Denver2 + A57 host, the oldest launch path of the list.
    source: 'data sheet',
    notes: 'data sheet; efficiencies and overhead are assumptions',
  },
  'jetson-agx-xavier-32gb': {
    id: 'jetson-agx-xavier-32gb',
    name: 'NVIDIA Jetson AGX Xavier 32GB',
    peakFlops: 11 * TFLOPS, // 512 Volta CUDA cores, 64 tensor cores
    memBandwidthBps: 136.5 * GB, // 256-bit LPDDR4x, shared with the CPU
    memoryBytes: 32 * GIB,
    // Assumption: as Xavier NX (Volta tensor cores ~35 %, LPDDR4x ~60 %).
    computeEfficiency: 0.35,
    memoryEfficiency: 0.6,
    overheadMsPerCall: 0.15, // Assumption: 8-core Carmel at higher clocks than the NX.
    source: 'data sheet',
    notes: 'data sheet; efficiencies and overhead are assumptions',
  },
  a6000: {
    id: 'a6000',
    name: 'NVIDIA RTX A6000',
    peakFlops: 154.8 * TFLOPS,
    memBandwidthBps: 768 * GB, // GDDR6
    memoryBytes: 48 * GIB,
    // Assumption: discrete GDDR6 GPUs sustain ~75 % of peak bandwidth on
    // large streaming reads and ~50 % of dense tensor peak on LLM GEMMs.
    computeEfficiency: 0.5,
    memoryEfficiency: 0.75,
    overheadMsPerCall: 0.02, // Assumption: fast x86 host, ~10 launches/layer, partly overlapped.
    source: 'data sheet',
    notes: 'data sheet; efficiencies and overhead are assumptions',
  },
  a40: {
    id: 'a40',
    name: 'NVIDIA A40',
    peakFlops: 149.7 * TFLOPS,
    memBandwidthBps: 696 * GB, // GDDR6 with ECC
    memoryBytes: 48 * GIB,
    // Assumption: same as the A6000 (same GA102 chip family).
    computeEfficiency: 0.5,
    memoryEfficiency: 0.75,
    overheadMsPerCall: 0.02,
    source: 'data sheet',
    notes: 'data sheet; efficiencies and overhead are assumptions',
  },
};

export function hasHardware(id: string): boolean {
  return Object.prototype.hasOwnProperty.call(HARDWARE, id);
}

export function getHardware(id: string): HardwareProfile {
  if (!hasHardware(id)) {
    throw new InputError(
      `unknown hardware id "${id}"; known data-sheet hardware: ${Object.keys(HARDWARE).join(', ')}`,
      'hardware',
    );
  }
  return HARDWARE[id];
}
