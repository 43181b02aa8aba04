/** Where `hatsim calibrate import-vidur` looks for Vidur's profiles by default; a module of its own so the CLI's option list needs no ONNX Runtime (issue 15). */
export const DEFAULT_VIDUR_DIR = '../shared/data/profiles/vidur';
