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
export {
  CONFIGMAP_BUDGET_BYTES,
  CONFIGMAP_MAX_RAW_BYTES,
  CONFIGMAP_ANNOTATIONS,
  CLUSTER_INPUTS,
  deliveredPath,
  deliveryPlan,
  datasetDeliveryIssues,
  remoteUrl,
  type ConfigMapItem,
  type DeliveryPlan,
  type RemoteDelivery,
  type DeliverySource,
  type DeliveryFile,
} from './delivery.ts';
export { runConvert, datasetInfoEntry, splitCount, type RunConvertOptions, type ConvertResult, type SourceSummary, type InputLayout, type SplitName } from './convert.ts';
export { convertCommand, convertFromConfigFile, type ConvertCommandOptions, type ConvertCommandResult } from './command.ts';
export {
  COMPLETION_MARKER,
  SHA256SUMS,
  createPartialDir,
  publishDirectory,
  publishStage,
  writeSha256Sums,
  writeCompletionMarker,
  readCompletionMarker,
  type CompletionMarker,
} from './publish.ts';
export { QUARANTINE_REASONS, type QuarantineReason } from './rows.ts';
export { TOKEN_ESTIMATE, estimateTokens } from './tokens.ts';
export { ConvertError, formatIssues, type Issue } from './issues.ts';
export { sourceStats, type SourceStats } from './stats.ts';
