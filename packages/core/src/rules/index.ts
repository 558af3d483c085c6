export { llamaFactoryRangeIssues, RANGED_LLAMAFACTORY_KEYS, type RangeContext } from './ranges.ts';
export { vllmValueIssues, vllmNumber, VLLM_MAX_LORA_RANKS, type VllmValueContext } from './vllm.ts';
export { secretShape, redactSecrets, scanForSecrets, redactIssue, type SecretKind, type SecretScanOptions } from './secrets.ts';
export { rowFieldIssues, ROW_ISSUE_CAP } from './rows.ts';
export { rowShape, rowEncoding, type RowShape, type RowField, type RowEncoding } from './row-formats.ts';
