/** Workload: arrivals and prompt/output lengths per device, trace reader. */
export {
  generateRequests,
  sampleLength,
  closedLoopNextArrivalS,
  isClosedLoop,
  workloadStreamNames,
  type DeviceRequest,
  type GenerateOptions,
} from './generate.js';
export { readTrace, clearTraceCache, TRACE_COLUMNS, type TraceRow, type TraceColumn } from './trace.js';
