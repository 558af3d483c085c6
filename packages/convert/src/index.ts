export { ConvertConfig, ConvertSource, ConvertFile, parseConvertConfig } from './config.ts';
export {
  DatasetDescriptor,
  AlpacaDescriptor,
  SharegptDescriptor,
  CsvDescriptor,
  TextDescriptor,
  DATASET_FORMATS,
  descriptorFiles,
  fileEncoding,
  parseDescriptor,
  type DatasetFormat,
  type DescriptorFile,
  type DescriptorResult,
} from './descriptor.ts';
export { loadDatasetSources, sourceDigest, canonicalJson, type LoadedSource, type LoadedFile } from './sources.ts';
// Delivery lives in core, where the compiler uses it; re-exported for the workspace's loader.
export { runConvert, datasetInfoEntry, splitCount, type ConvertOutput, type RunConvertOptions, type ConvertResult, type SourceSummary, type InputLayout, type SplitName } from './convert.ts';
export { convertCommand, convertFromConfigFile, type ConvertCommandOptions, type ConvertCommandResult } from './command.ts';
export { QUARANTINE_REASONS, type QuarantineReason } from './rows.ts';
export { TOKEN_ESTIMATE, estimateTokens } from './tokens.ts';
export { ConvertError, formatIssues, type Issue } from './issues.ts';
export { sourceStats, type SourceStats } from './stats.ts';
